//! `uc services`, `uc logs` and `uc node cordon|drain|uncordon` against the
//! deployer's API, with a real etcd, the scheduler and two node-agents
//! running in-process and real instances (python3's http.server).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::uc;
use uc_testkit::{Etcd, TestDir};

const HA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../hosts/ha/manifest.json"
);

fn agent_config(dir: &Path, node: &str, n: u8, endpoint: &str) -> uc_types::NodeAgentConfig {
    uc_types::NodeAgentConfig {
        schema_version: uc_types::SCHEMA_VERSION,
        cluster: "ha".into(),
        node: node.into(),
        http_listen: format!("127.78.0.{n}:0")
            .parse()
            .unwrap_or_else(|_| unreachable!()),
        store_endpoints: vec![endpoint.to_owned()],
        address: format!("127.78.0.{n}")
            .parse()
            .unwrap_or_else(|_| unreachable!()),
        state_dir: dir.join(node).display().to_string(),
        heartbeat_ttl_seconds: 3,
    }
}

/// The golden ha manifest, with a secret file that exists and a line logged
/// at start.
fn manifest(dir: &Path) -> PathBuf {
    let secret = dir.join("web-session-key");
    std::fs::write(&secret, "k").expect("secret");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(HA).expect("golden")).expect("json");
    let web = &mut m["services"]["web"];
    web["secretFiles"]["SESSION_KEY"] = secret.display().to_string().into();
    web["healthCheck"]["intervalSeconds"] = 1.into();
    web["exec"]["command"] = serde_json::json!(["/bin/sh", "-c",
        "echo \"serving $UC_INSTANCE with $GREETING\"; exec python3 -m http.server --bind \"$UC_ADDRESS\" \"$UC_PORT_HTTP\""]);
    let path = dir.join("manifest.json");
    std::fs::write(&path, m.to_string()).expect("write");
    path
}

fn wait_for_output(args: &[&str], want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out, err) = uc(args);
        if ok && want(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "uc {args:?} never matched:\n{out}{err}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn services_logs_and_node_steering() {
    let dir = TestDir::new("uc-cli-services");
    let _instances = KillInstances(dir.to_path_buf());
    let etcd = Etcd::start(&dir.join("etcd"));
    let agents_dir = dir.to_path_buf();
    let deployer = common::serve_deployer_api(etcd.endpoint.clone(), move |endpoint| {
        for (n, node) in [(1, "worker1"), (2, "worker2")] {
            let options = uc_node_agent::daemon::Options {
                backend: uc_node_agent::runner::Backend::Process,
                stop_timeout: Duration::from_secs(3),
                log_max_bytes: 1 << 20,
                log_keep: 1,
                stop_instances_on_exit: false,
            };
            let config = agent_config(&agents_dir, node, n, endpoint);
            tokio::spawn(uc_node_agent::daemon::run(
                config,
                options,
                std::future::pending(),
            ));
        }
        let scheduler = uc_types::SchedulerConfig {
            schema_version: uc_types::SCHEMA_VERSION,
            cluster: "ha".into(),
            node: "cp1".into(),
            http_listen: "127.0.0.1:0".parse().expect("address"),
            store_endpoints: vec![endpoint.to_owned()],
            node_loss_grace_seconds: 30,
        };
        let options = uc_scheduler::daemon::Options {
            holder: "test".into(),
            leader_ttl: Duration::from_secs(3),
        };
        tokio::spawn(uc_scheduler::daemon::run(
            scheduler,
            options,
            std::future::pending(),
        ));
    });
    let d = deployer.as_str();
    let manifest = manifest(&dir);
    let m = manifest.to_str().expect("utf-8");

    // Before anything is deployed: clear errors.
    let (ok, _, err) = uc(&["node", "drain", "worker1", "--deployer", d]);
    assert!(
        !ok && err.contains("deployer answered 409: no manifest deployed yet"),
        "{err}"
    );

    // No systems: services only; the rollout has nothing to do.
    let (ok, out, err) = uc(&["deploy", m, "--deployer", d]);
    assert!(ok && out.starts_with("rollout 1: Succeeded"), "{out}{err}");
    let table = wait_for_output(&["services", "--deployer", d], |out| {
        out.matches(" healthy ").count() == 2
    });
    assert!(
        table.starts_with("SERVICE  INSTANCE  NODE     STATE    RESTARTS  PORTS      MESSAGE\n"),
        "{table}"
    );
    assert!(table.contains("web      web-0     worker"), "{table}");
    assert!(table.contains("http=8080"), "{table}");

    // The dashboard lists the instances too.
    let port: u16 = deployer.rsplit(':').next().unwrap().parse().unwrap();
    let (code, page) = uc_testkit::http(port, "GET", "/", "");
    assert_eq!(code, 200);
    assert!(page.contains("<h2>Instances</h2>"), "{page}");
    assert_eq!(
        page.matches("<td class=\"state\">healthy</td>").count(),
        2,
        "{page}"
    );

    let (ok, logs, err) = uc(&["logs", "web", "--lines", "5", "--deployer", d]);
    assert!(ok, "{err}");
    for id in ["0", "1"] {
        assert!(logs.contains(&format!("==> web-{id} on worker")), "{logs}");
        assert!(
            logs.contains(&format!("serving web-{id} with hello from ha")),
            "{logs}"
        );
    }
    let (ok, one, _) = uc(&["logs", "web", "--instance", "1", "--deployer", d]);
    assert!(
        ok && !one.contains("web-0") && one.contains("web-1"),
        "{one}"
    );
    let (ok, _, err) = uc(&["logs", "nope", "--deployer", d]);
    assert!(
        !ok && err.contains("no service nope deployed (services: web)"),
        "{err}"
    );

    // A drain with nowhere to go (2 replicas, anti-affinity, 2 workers):
    // nothing stops, the instance is reported stuck.
    let (ok, out, err) = uc(&[
        "node",
        "drain",
        "worker1",
        "--reason",
        "disk",
        "--deployer",
        d,
    ]);
    assert!(ok && out.starts_with("node worker1 draining"), "{out}{err}");
    let cordon: serde_json::Value =
        serde_json::from_str(&etcd.get("/uc/v1/nodes/worker1/cordon").expect("cordon"))
            .expect("json");
    assert_eq!(cordon["drain"], true);
    assert_eq!(cordon["reason"], "disk");
    let stuck = wait_for_output(&["services", "--deployer", d], |out| out.contains("stuck"));
    assert!(
        stuck.contains("unschedulable nodes: worker1 (draining)"),
        "{stuck}"
    );
    assert_eq!(stuck.matches(" healthy ").count(), 2, "{stuck}");

    let (ok, out, _) = uc(&["node", "cordon", "worker2", "--deployer", d]);
    assert!(ok && out.starts_with("node worker2 cordoned"), "{out}");
    for node in ["worker1", "worker2"] {
        let (ok, out, _) = uc(&["node", "uncordon", node, "--deployer", d]);
        assert!(
            ok && out.starts_with(&format!("node {node} uncordoned")),
            "{out}"
        );
        assert_eq!(etcd.get(&format!("/uc/v1/nodes/{node}/cordon")), None);
    }
    let (ok, _, err) = uc(&["node", "drain", "nope", "--deployer", d]);
    assert!(
        !ok && err.contains("deployer answered 404: no node nope in the deployed manifest (nodes: cp1, cp2, cp3, edge1, worker1, worker2)"),
        "{err}"
    );
}

/// The in-process agents leave their instances running by design.
struct KillInstances(PathBuf);

impl Drop for KillInstances {
    fn drop(&mut self) {
        for node in ["worker1", "worker2"] {
            uc_testkit::kill_node_agent_instances(&self.0.join(node));
        }
    }
}
