//! Switching with the real Nix: fixture systems built offline with
//! builtins.derivation and /bin/sh, served by uc-deployer's binary cache,
//! realised into a chroot store, activated, health-checked, rolled back.

mod common;

use std::time::Duration;

use common::{activations, build_systems, key_pair, serve_cache, test_dir};
use uc_deployer::cache::SigningKey;
use uc_nix_agent::nix::NixSystem;
use uc_nix_agent::switch::Switcher;
use uc_types::{DesiredSystem, HealthCheckType, SystemHealthCheck, SystemState};

#[test]
fn switches_rolls_back_and_recovers() {
    let dir = test_dir("uc-nix-agent-switch-test");
    let systems = build_systems(&dir);
    let [gen1, gen2, bad, unhealthy, unserved] = systems.as_slice() else {
        panic!("five systems expected: {systems:?}");
    };

    let (secret, public) = key_pair(&dir, "uc-switch-test-1");
    let (_, stranger) = key_pair(&dir, "uc-stranger-1");
    let url = serve_cache(
        SigningKey::load(&secret).expect("key"),
        vec![gen1.clone(), gen2.clone(), bad.clone(), unhealthy.clone()],
    );

    let root = dir.join("node-store");
    let switcher = |trusted: &str| Switcher {
        nix: NixSystem {
            profile: root.join("profiles/system"),
            store_root: Some(root.clone()),
            cache_urls: vec![url.clone()],
            trusted_public_keys: vec![trusted.to_owned()],
        },
        state_dir: dir.join("agent-state"),
        action: "switch".into(),
        checks: vec![SystemHealthCheck {
            name: "not-unhealthy".into(),
            kind: HealthCheckType::Exec,
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("! grep -q unhealthy {}/running", dir.display()),
            ],
            address: None,
            url: None,
            timeout_seconds: 2,
        }],
        health_gate: Duration::from_secs(2),
    };
    let agent = switcher(&public);
    let desired = |path: &String, generation| DesiredSystem {
        store_path: path.clone(),
        generation,
        rollout: None,
    };

    // Generation 1, then 2: fetched through the cache, activated, healthy.
    let report = agent.switch(&desired(gen1, 1));
    assert_eq!(
        (report.state, report.store_path.as_ref()),
        (SystemState::Healthy, Some(gen1)),
        "{report:?}"
    );
    assert!(
        root.join(&gen1[1..])
            .join("bin/switch-to-configuration")
            .exists(),
        "realised into the node's store"
    );
    let report = agent.switch(&desired(gen2, 2));
    assert_eq!(
        (report.state, report.store_path.as_ref()),
        (SystemState::Healthy, Some(gen2)),
        "{report:?}"
    );
    assert_eq!(agent.nix.current().as_ref(), Some(gen2));

    // A system whose activation fails: back on generation 2, re-activated.
    let report = agent.switch(&desired(bad, 3));
    assert_eq!(
        (report.state, report.store_path.as_ref()),
        (SystemState::RolledBack, Some(gen2)),
        "{report:?}"
    );
    assert!(
        report
            .error
            .as_deref()
            .unwrap_or("")
            .contains("switch-to-configuration switch failed"),
        "{report:?}"
    );
    assert_eq!(agent.nix.current().as_ref(), Some(gen2));
    assert_eq!(activations(&dir)[2..], ["bad switch", "gen2 switch"]);

    // A system that activates but fails its health checks: rolled back too.
    let report = agent.switch(&desired(unhealthy, 4));
    assert_eq!(report.state, SystemState::RolledBack, "{report:?}");
    assert!(
        report
            .error
            .as_deref()
            .unwrap_or("")
            .contains("not-unhealthy"),
        "{report:?}"
    );
    assert_eq!(agent.nix.current().as_ref(), Some(gen2));

    // Not in the cache, or signed by a key the node does not trust: nothing is switched.
    let report = agent.switch(&desired(unserved, 5));
    assert_eq!(
        (report.state, report.store_path.as_ref()),
        (SystemState::Failed, Some(gen2)),
        "{report:?}"
    );
    let suspicious = switcher(&stranger);
    let report = suspicious.switch(&desired(gen1, 6));
    assert_eq!(report.state, SystemState::Failed, "{report:?}");
    assert!(
        report
            .error
            .as_deref()
            .unwrap_or("")
            .contains("trusted key"),
        "{report:?}"
    );
    assert_eq!(agent.nix.current().as_ref(), Some(gen2));

    // Killed after setting the profile but before activating: the restarted
    // agent finishes the switch from the marker it left.
    let before = activations(&dir).len();
    std::fs::write(
        dir.join("agent-state/switch-in-progress.json"),
        serde_json::json!({"from": gen2, "to": gen1, "generation": 7}).to_string(),
    )
    .expect("marker");
    agent.nix.set_profile(gen1).expect("profile");
    let report = agent.recover().expect("an interrupted switch is found");
    assert_eq!(
        (report.state, report.generation),
        (SystemState::Healthy, 7),
        "{report:?}"
    );
    assert_eq!(activations(&dir)[before..], ["gen1 switch"]);
    assert!(agent.recover().is_none(), "the marker is gone once handled");
}
