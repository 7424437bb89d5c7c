//! The daemon against a real etcd (Debian's etcd-server, the drop-in the
//! store must match): desired systems written with the real etcdctl are
//! switched to, and the observed state appears in the store.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::{
    assert_error_mentions, assert_runs, build_systems, desire, key_pair, observed, serve_cache,
    start_agent, test_dir,
};
use uc_deployer::cache::SigningKey;
use uc_testkit::{free_port, http, wait_for, Etcd};
use uc_types::{keys, SystemState};

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
    let mut agent = start_agent(&config, &dir.join("node-store"));

    let desired_key = keys::desired_system("n1");
    let observed = || observed(&etcd, "n1");
    // Desires `path` as `generation`; the report once the agent settled:
    // `state`, running `running`.
    let switch = |path: &String, generation: u64, state: SystemState, running: &String| {
        desire(&etcd, "n1", path, generation);
        let report = wait_for(
            &format!("generation {generation}"),
            Duration::from_secs(60),
            || {
                observed()
                    .filter(|o| o.generation == generation && o.state != SystemState::Switching)
            },
        );
        assert_runs(&report, state, running);
        report
    };

    switch(gen1, 1, SystemState::Healthy, gen1);
    switch(gen2, 2, SystemState::Healthy, gen2);
    let report = switch(bad, 3, SystemState::RolledBack, gen2);
    assert_error_mentions(&report, "switch-to-configuration");

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
    assert_runs(&report, SystemState::Failed, gen2);

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

    let status = agent.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}");
}
