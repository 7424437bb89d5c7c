//! Runs the built `uc` binary on the golden manifests.

mod common;

use common::uc;

const HA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../hosts/ha/manifest.json"
);

#[test]
fn plan_shows_nodes_services_and_waves() {
    let (ok, out, err) = uc(&["plan", HA]);
    assert!(ok, "{err}");
    assert!(out.starts_with("cluster ha (schemaVersion 1)"), "{out}");
    assert!(out.contains("cp1          10.1.0.11        roles: control-plane; install standard on /dev/disk/by-id/virtio-root"), "{out}");
    assert!(
        out.contains("daemons: store, deployer, scheduler, nix-agent, node-agent"),
        "{out}"
    );
    assert!(
        out.contains(
            "web          2 replica(s) on 2 eligible: worker1, worker2; ports http=8080/tcp"
        ),
        "{out}"
    );
    assert!(
        out.contains("www          Http :80 on edge1 -> service web:http"),
        "{out}"
    );
    assert!(
        out.contains("wave 1: worker1\n  wave 2: edge1\n  wave 3: worker2\n  wave 4: cp1"),
        "{out}"
    );
}

#[test]
fn check_accepts_goldens_and_refuses_garbage() {
    let (ok, out, _) = uc(&["manifest", "check", HA]);
    assert!(ok);
    assert!(
        out.contains("cluster \"ha\" holds the contract (schemaVersion 1): 6 nodes, 1 services"),
        "{out}"
    );

    let bad = std::env::temp_dir().join(format!("uc-cli-bad-{}.json", std::process::id()));
    std::fs::write(&bad, r#"{"schemaVersion": 7}"#).expect("write");
    let (ok, _, err) = uc(&["manifest", "check", bad.to_str().expect("utf-8 path")]);
    assert!(!ok);
    assert!(
        err.contains("has schemaVersion 7, but this build reads schemaVersion 1"),
        "{err}"
    );
    let _ = std::fs::remove_file(&bad);
}

#[test]
fn daemon_config_extracts_one_file() {
    let daemon_config = |daemon: &str| {
        uc(&[
            "manifest",
            "daemon-config",
            HA,
            "--node",
            "edge1",
            "--daemon",
            daemon,
        ])
    };
    let (ok, out, err) = daemon_config("dns");
    assert!(ok, "{err}");
    let config: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(config["listen"], serde_json::json!(["10.1.0.31:53"]));

    let (ok, _, err) = daemon_config("store");
    assert!(!ok);
    assert!(
        err.contains(
            "node \"edge1\" does not run \"store\" (it runs: nix-agent, node-agent, dns, lb)"
        ),
        "{err}"
    );
}
