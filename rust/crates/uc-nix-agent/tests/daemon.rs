//! The daemon against a real etcd (Debian's etcd-server, the drop-in the
//! store must match): desired systems written with the real etcdctl are
//! switched to, and the observed state appears in the store.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{build_systems, key_pair, ok, serve_cache, test_dir};
use uc_deployer::cache::SigningKey;
use uc_testkit::{free_port, http, wait_for, Etcd, KillOnDrop};
use uc_types::{keys, ObservedSystem, SystemState};

#[test]
fn follows_desired_state_in_etcd() {
    let dir = test_dir("uc-nix-agent-daemon-test");
    let systems = build_systems(&dir);
    let [gen1, gen2, bad, ..] = systems.as_slice() else {
        panic!("systems: {systems:?}");
    };
    let (secret, public) = key_pair(&dir, "uc-daemon-test-1");
    let cache = serve_cache(
        SigningKey::load(&secret).unwrap(),
        vec![gen1.clone(), gen2.clone(), bad.clone()],
    );

    let etcd = Etcd::start(&dir.join("etcd"));
    let endpoint = etcd.endpoint.clone();

    let http_port = free_port();
    let config = dir.join("nix-agent.json");
    let json = serde_json::json!({
        "schemaVersion": 1, "cluster": "test", "node": "n1",
        "httpListen": format!("127.0.0.1:{http_port}"),
        "storeEndpoints": [endpoint],
        "profile": dir.join("node-store/profiles/system"),
        "stateDir": dir.join("agent-state"),
        "cacheUrls": [cache], "trustedPublicKeys": [public],
        "switchAction": "switch", "healthGateTimeoutSeconds": 2,
        "healthChecks": [{"name": "running-file", "type": "exec",
            "command": ["test", "-s", dir.join("running")], "address": null, "url": null, "timeoutSeconds": 2}],
    });
    std::fs::write(&config, json.to_string()).unwrap();
    let mut agent = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_uc-nix-agent"))
            .arg("--config")
            .arg(&config)
            .arg("--store-root")
            .arg(dir.join("node-store"))
            .arg("run")
            .spawn()
            .expect("start uc-nix-agent"),
    );

    let desired_key = keys::desired_system("n1");
    let observed_key = keys::observed_system("n1");
    let observed = || {
        etcd.get(&observed_key)
            .and_then(|v| serde_json::from_str::<ObservedSystem>(&v).ok())
    };
    let desire = |path: &str, generation: u64| {
        let value =
            serde_json::json!({"storePath": path, "generation": generation, "rollout": null});
        etcd.ctl(&["put", &desired_key, &value.to_string()]);
    };
    let settled = |generation: u64| {
        wait_for(
            &format!("generation {generation}"),
            Duration::from_secs(60),
            || {
                observed()
                    .filter(|o| o.generation == generation && o.state != SystemState::Switching)
            },
        )
    };

    desire(gen1, 1);
    let report = settled(1);
    assert_eq!(
        (report.state, report.store_path.as_ref()),
        (SystemState::Healthy, Some(gen1)),
        "{report:?}"
    );

    desire(gen2, 2);
    let report = settled(2);
    assert_eq!(
        (report.state, report.store_path.as_ref()),
        (SystemState::Healthy, Some(gen2)),
        "{report:?}"
    );

    desire(bad, 3);
    let report = settled(3);
    assert_eq!(
        (report.state, report.store_path.as_ref()),
        (SystemState::RolledBack, Some(gen2)),
        "{report:?}"
    );
    assert!(report
        .error
        .unwrap_or_default()
        .contains("switch-to-configuration"));

    // Garbage in the desired key is reported, not acted on.
    etcd.ctl(&["put", &desired_key, "not json"]);
    let report = wait_for(
        "the bad value to be reported",
        Duration::from_secs(20),
        || {
            observed().filter(|o| {
                o.error
                    .as_deref()
                    .unwrap_or("")
                    .contains("is not a desired system")
            })
        },
    );
    assert_eq!(
        (report.state, report.store_path.as_ref()),
        (SystemState::Failed, Some(gen2)),
        "{report:?}"
    );

    let (status, health) = http(http_port, "GET", "/health", "");
    assert_eq!(status, 200);
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    let (_, metrics) = http(http_port, "GET", "/metrics", "");
    assert!(
        metrics.contains("uc_nix_agent_switches_total{outcome=\"healthy\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("uc_nix_agent_switches_total{outcome=\"rolled-back\"} 1"),
        "{metrics}"
    );

    ok(Command::new("kill").args(["-TERM", &agent.0.id().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "uc-nix-agent ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
