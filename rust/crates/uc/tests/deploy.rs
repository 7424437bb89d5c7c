//! `uc deploy` and `uc rollout` against the deployer's API (in-process, on a
//! real etcd). No agents run, so the rollout waits in its first wave: the
//! point here is the CLI's requests, output and errors.

mod common;

use common::uc;

use uc_testkit::Etcd;

const HA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../hosts/ha/manifest.json"
);
// Any valid store path: without agents nothing fetches it.
const SYSTEM: &str = "/nix/store/00000000000000000000000000000000-nixos-system";

#[test]
fn deploy_and_steer_a_rollout() {
    let dir = std::env::temp_dir().join(format!("uc-cli-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let etcd = Etcd::start(&dir.join("etcd"));
    let deployer = common::serve_deployer_api(etcd.endpoint.clone(), |_| {});
    let d = deployer.as_str();

    let systems = ["worker1", "worker2", "edge1"].map(|n| format!("{n}={SYSTEM}"));
    let mut args = vec!["deploy", HA, "--deployer", d];
    for s in &systems {
        args.extend(["--system", s.as_str()]);
    }
    let (ok, out, err) = uc(&args);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("rollout 1: Running, wave 1 of 3\n"),
        "{out}"
    );
    assert!(
        out.contains("now  wave 1: worker1\n") && out.contains("     wave 3: worker2\n"),
        "{out}"
    );
    assert!(
        etcd.get("/uc/v1/nodes/worker1/desired-system").is_none(),
        "no engine runs here"
    );
    assert!(etcd
        .get("/uc/v1/manifest/history/00000000000000000001")
        .is_some());

    // A second deployment while one runs is refused, with the way out.
    let (ok, _, err) = uc(&args);
    assert!(!ok);
    assert!(err.contains("deployer answered 409: rollout 1 is still running; wait for it, or `uc rollout abort` it first"), "{err}");

    let (ok, out, _) = uc(&["rollout", "pause", "--deployer", d]);
    assert!(ok && out.starts_with("rollout 1: Paused"), "{out}");
    let (ok, out, _) = uc(&["rollout", "resume", "--deployer", d]);
    assert!(ok && out.starts_with("rollout 1: Running"), "{out}");
    let (ok, out, _) = uc(&["rollout", "abort", "--deployer", d]);
    assert!(ok && out.starts_with("rollout 1: Aborted"), "{out}");
    let (ok, _, err) = uc(&["rollout", "abort", "--deployer", d]);
    assert!(
        !ok && err.contains("rollout 1 is Aborted; cannot abort it"),
        "{err}"
    );
    let (ok, out, _) = uc(&["rollout", "status", "--deployer", d]);
    assert!(ok && out.starts_with("rollout 1: Aborted"), "{out}");

    // A later manifest without the listener: its spec is deleted, others stay.
    assert!(etcd.get("/uc/v1/lb/listeners/www").is_some());
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(HA).expect("golden")).expect("json");
    manifest["lb"]["listeners"] = serde_json::json!({});
    manifest["services"]["web"]["listeners"] = serde_json::json!([]);
    let smaller = dir.join("smaller.json");
    std::fs::write(&smaller, manifest.to_string()).expect("write");
    let (ok, out, err) = uc(&[
        "deploy",
        smaller.to_str().expect("utf-8"),
        "--deployer",
        d,
        "--system",
        &systems[0],
    ]);
    assert!(ok && out.starts_with("rollout 2: Running"), "{out}{err}");
    assert_eq!(etcd.get("/uc/v1/lb/listeners/www"), None);
    assert!(etcd.get("/uc/v1/services/web/spec").is_some());
    uc(&["rollout", "abort", "--deployer", d]);

    // Bad input: a system for an unknown node; an unreachable deployer.
    let (ok, _, err) = uc(&[
        "deploy",
        HA,
        "--deployer",
        d,
        "--system",
        &format!("nope={SYSTEM}"),
    ]);
    assert!(
        !ok && err
            .contains("deployer answered 422: systems.nope: no node \"nope\" in the manifest"),
        "{err}"
    );
    let (ok, _, err) = uc(&["deploy", HA, "--deployer", d, "--system", "worker1"]);
    assert!(
        !ok && err.contains("--system worker1: write NODE=/nix/store/..."),
        "{err}"
    );
    // Port 0 never accepts a connection (a freed port might).
    let closed = "http://127.0.0.1:0".to_owned();
    let (ok, _, err) = uc(&["rollout", "status", "--deployer", &closed]);
    assert!(!ok && err.contains("cannot reach the deployer"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
