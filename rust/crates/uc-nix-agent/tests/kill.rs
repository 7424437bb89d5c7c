//! kill -9 of the agent in the middle of a switch: the restarted agent finds
//! the switch from its marker and the profile, finishes it, and reports.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    assert_runs, build_switch_systems, desire, key_pair, observed, ok, serve_cache, start_agent,
    test_dir,
};
use uc_deployer::cache::SigningKey;
use uc_testkit::{free_port, wait_for, Etcd};
use uc_types::SystemState;

/// `quick` activates at once; `slow` logs "slow start", sleeps 3 s, logs "slow done".
fn systems(dir: &Path) -> (String, String) {
    let paths = build_switch_systems(
        "name: body",
        r"'#!/bin/sh\n%s\n' '${body}'",
        &format!(
            r#"
        (system "quick" "echo quick >> {log}")
        (system "slow" "echo slow start >> {log}; sleep 3; echo slow done >> {log}")
      "#,
            log = dir.join("activations").display()
        ),
    );
    (paths[0].clone(), paths[1].clone())
}

#[test]
fn a_killed_agent_finishes_the_switch_on_restart() {
    let dir = test_dir("uc-nix-agent-kill-test");
    let (quick, slow) = systems(&dir);
    let (secret, public) = key_pair(&dir, "uc-kill-test-1");
    let cache = serve_cache(
        SigningKey::load(&secret).unwrap(),
        vec![quick.clone(), slow.clone()],
    );
    let etcd = Etcd::start(&dir.join("etcd"));

    let config = dir.join("nix-agent.json");
    let json = serde_json::json!({
        "schemaVersion": 1, "cluster": "test", "node": "n1",
        "httpListen": format!("127.0.0.1:{}", free_port()),
        "storeEndpoints": [etcd.endpoint],
        "profile": dir.join("node-store/profiles/system"),
        "stateDir": dir.join("agent-state"),
        "cacheUrls": [cache], "trustedPublicKeys": [public],
        "switchAction": "switch", "healthGateTimeoutSeconds": 5, "healthChecks": [],
    });
    std::fs::write(&config, json.to_string()).unwrap();
    let start = || start_agent(&config, &dir.join("node-store"));
    let observed = || observed(&etcd, "n1");
    let desire = |path: &str, generation: u64| desire(&etcd, "n1", path, generation);
    let log = || std::fs::read_to_string(dir.join("activations")).unwrap_or_default();

    let mut first = start();
    desire(&quick, 1);
    wait_for("generation 1 healthy", Duration::from_secs(30), || {
        observed().filter(|o| o.generation == 1 && o.state == SystemState::Healthy)
    });

    // Killed while the slow system activates (profile already switched).
    desire(&slow, 2);
    wait_for(
        "the slow activation to start",
        Duration::from_secs(30),
        || log().contains("slow start").then_some(()),
    );
    ok(Command::new("kill").args(["-KILL", &first.0.id().to_string()]));
    let _ = first.0.wait();
    assert!(
        !log().contains("slow done"),
        "killed before the activation finished"
    );
    assert!(
        dir.join("agent-state/switch-in-progress.json").exists(),
        "the marker survives the kill"
    );

    let _second = start();
    let report = wait_for(
        "generation 2 after the restart",
        Duration::from_secs(30),
        || observed().filter(|o| o.generation == 2 && o.state != SystemState::Switching),
    );
    assert_runs(&report, SystemState::Healthy, &slow);
    // The orphaned activation ran to its end first; the restarted agent waited
    // for it (activation lock), then activated once more and checked health.
    assert!(
        log().ends_with("slow start\nslow done\nslow start\nslow done\n"),
        "{}",
        log()
    );
    assert!(!dir.join("agent-state/switch-in-progress.json").exists());
}
