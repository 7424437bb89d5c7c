//! Switching with the real Nix: fixture systems built offline with
//! builtins.derivation and /bin/sh, served by uc-deployer's binary cache,
//! realised into a chroot store, activated, health-checked, rolled back.

mod common;

use std::time::Duration;

use common::{
    activations, assert_error_mentions, assert_runs, build_systems, key_pair, serve_cache, test_dir,
};
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
    assert_runs(&report, SystemState::Healthy, gen1);
    assert!(
        root.join(&gen1[1..])
            .join("bin/switch-to-configuration")
            .exists(),
        "realised into the node's store"
    );
    let report = agent.switch(&desired(gen2, 2));
    assert_runs(&report, SystemState::Healthy, gen2);
    assert_eq!(agent.nix.current().as_ref(), Some(gen2));

    // A system whose activation fails: back on generation 2, re-activated.
    let report = agent.switch(&desired(bad, 3));
    assert_runs(&report, SystemState::RolledBack, gen2);
    assert_error_mentions(&report, "switch-to-configuration switch failed");
    assert_eq!(agent.nix.current().as_ref(), Some(gen2));
    assert_eq!(activations(&dir)[2..], ["bad switch", "gen2 switch"]);

    // A system that activates but fails its health checks: rolled back too.
    let report = agent.switch(&desired(unhealthy, 4));
    assert_eq!(report.state, SystemState::RolledBack, "{report:?}");
    assert_error_mentions(&report, "not-unhealthy");
    assert_eq!(agent.nix.current().as_ref(), Some(gen2));

    // Not in the cache, or signed by a key the node does not trust: nothing is switched.
    let report = agent.switch(&desired(unserved, 5));
    assert_runs(&report, SystemState::Failed, gen2);
    let suspicious = switcher(&stranger);
    let report = suspicious.switch(&desired(gen1, 6));
    assert_eq!(report.state, SystemState::Failed, "{report:?}");
    assert_error_mentions(&report, "trusted key");
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

/// Between Nix and `upstream`, one connection per request: the first NAR
/// download is cut off halfway, as when the deployer restarts mid-rollout.
/// Returns the proxy's URL and the number of transfers it cut.
fn cutting_proxy(upstream: &str) -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU32, Ordering};
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let url = format!("http://{}", listener.local_addr().expect("proxy address"));
    let cut = std::sync::Arc::new(AtomicU32::new(0));
    let counter = cut.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            // The request head (Nix sends no body for GET).
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let request = String::from_utf8_lossy(&head).into_owned();
            let is_nar = request.starts_with("GET /nar/");
            let mut server = std::net::TcpStream::connect(&upstream).expect("reach the cache");
            let request = request.replacen("\r\n", "\r\nConnection: close\r\n", 1);
            server
                .write_all(request.as_bytes())
                .expect("forward the request");
            let mut response = Vec::new();
            let _ = server.read_to_end(&mut response);
            let body_at = response
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(0, |p| p + 4);
            let cut_now = is_nar
                && response.len() > body_at + 1
                && counter
                    .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
            let end = if cut_now {
                body_at + (response.len() - body_at) / 2
            } else {
                response.len()
            };
            let _ = client.write_all(&response[..end]);
        }
    });
    (url, cut)
}

/// A download cut off halfway is retried, and the switch succeeds.
#[test]
fn a_cut_download_is_retried() {
    let dir = test_dir("uc-nix-agent-cut-download");
    let systems = build_systems(&dir);
    let gen1 = &systems[0];
    let (secret, public) = key_pair(&dir, "uc-cut-test-1");
    let upstream = serve_cache(SigningKey::load(&secret).expect("key"), vec![gen1.clone()]);
    let (url, cut) = cutting_proxy(&upstream);
    let root = dir.join("node-store");
    let agent = Switcher {
        nix: NixSystem {
            profile: root.join("profiles/system"),
            store_root: Some(root.clone()),
            cache_urls: vec![url],
            trusted_public_keys: vec![public],
        },
        state_dir: dir.join("agent-state"),
        action: "switch".into(),
        checks: Vec::new(),
        health_gate: Duration::from_secs(2),
    };
    let report = agent.switch(&DesiredSystem {
        store_path: gen1.clone(),
        generation: 1,
        rollout: None,
    });
    assert_eq!(
        cut.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no download was cut"
    );
    assert_runs(&report, SystemState::Healthy, gen1);
}
