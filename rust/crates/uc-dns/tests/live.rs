//! uc-dns follows the cluster: a service record answers the nodes running
//! healthy instances and changes within a second of an instance turning
//! unhealthy and back, with no restart; a uc-dns started from its config
//! file serves only the zones listed there; when the store goes away the
//! last snapshot keeps answering and /health says degraded, and when a
//! store answers again uc-dns reads it anew.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Dns;
use serde_json::Value;
use uc_testkit::{free_port, Etcd, TestDir};
use uc_types::{keys, Assignment, InstancePhase, InstanceState, InstanceStatus};

/// A second is the promise; dig's own start-up is inside the measurement.
const LIVE: Duration = Duration::from_millis(1000);

fn ha_manifest() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../hosts/ha/manifest.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// etcdctl against `endpoint` (the store may be one this test restarted).
fn ctl(endpoint: &str, args: &[&str]) {
    let status = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("run etcdctl");
    assert!(status.success(), "etcdctl {args:?}");
}

/// What the deployer writes: the manifest revision and each zone.
fn import(store: &str, manifest: &Value) {
    let revision =
        serde_json::json!({"revision": 1, "importedAt": 0, "systems": {}, "manifest": manifest});
    ctl(
        store,
        &["put", &keys::manifest_current(), &revision.to_string()],
    );
    for (apex, zone) in manifest["dns"]["zones"].as_object().unwrap() {
        ctl(store, &["put", &keys::dns_zone(apex), &zone.to_string()]);
    }
}

/// What the scheduler writes for instance `id` of web on `node`.
fn assign(store: &str, id: &str, node: &str) {
    let assignment = Assignment {
        node: node.to_owned(),
        ports: BTreeMap::from([("http".to_owned(), 8080)]),
    };
    let value = serde_json::to_string(&assignment).unwrap();
    ctl(
        store,
        &["put", &keys::service_assignment("web", id), &value],
    );
}

/// What a node-agent writes about instance `id` of web on `node`.
fn report(store: &str, node: &str, address: &str, id: &str, state: InstanceState) {
    let status = InstanceStatus {
        service: "web".to_owned(),
        id: id.to_owned(),
        state,
        phase: InstancePhase::Running,
        pid: Some(4242),
        restarts: 0,
        address: address.parse().unwrap(),
        ports: BTreeMap::from([("http".to_owned(), 8080)]),
        since: 0,
        message: None,
    };
    let value = serde_json::to_string(&status).unwrap();
    let key = keys::instance_status(node, &keys::instance_name("web", id));
    ctl(store, &["put", &key, &value]);
}

#[test]
fn service_records_follow_instance_health_and_survive_the_store() {
    let dir = TestDir::new("uc-dns-live");
    let etcd = Etcd::start(&dir.join("store"));
    let store = etcd.endpoint.as_str();
    import(store, &ha_manifest());
    assign(store, "0", "worker1");
    assign(store, "1", "worker2");
    report(store, "worker1", "10.1.0.21", "0", InstanceState::Healthy);
    report(store, "worker2", "10.1.0.22", "1", InstanceState::Healthy);
    let dns = Dns::start(&etcd, &dir);
    let web = ["web.ha.test", "A"];
    let both = |reply: &common::Reply| reply.answer_data() == ["10.1.0.21", "10.1.0.22"];
    dns.dig_until(&web, LIVE, both);
    let reply = dns.dig(&["_http._tcp.web.ha.test", "SRV"]);
    assert_eq!(
        reply.answer_data(),
        ["0 0 8080 web.ha.test."],
        "{}",
        reply.text
    );
    assert_eq!(reply.additional.len(), 2, "{}", reply.text);

    // worker1's instance fails its health check, then recovers.
    report(store, "worker1", "10.1.0.21", "0", InstanceState::Unhealthy);
    let took = dns.dig_until(&web, LIVE, |r| r.answer_data() == ["10.1.0.22"]);
    eprintln!("unhealthy seen after {took:?}");
    report(store, "worker1", "10.1.0.21", "0", InstanceState::Healthy);
    let took = dns.dig_until(&web, LIVE, both);
    eprintln!("healthy again seen after {took:?}");

    // Its node-agent's lease runs out: the status key goes.
    let key = keys::instance_status("worker2", &keys::instance_name("web", "1"));
    ctl(store, &["del", &key]);
    dns.dig_until(&web, LIVE, |r| r.answer_data() == ["10.1.0.21"]);
    // No healthy instance left: the name stays, without addresses (NODATA).
    report(store, "worker1", "10.1.0.21", "0", InstanceState::Starting);
    dns.dig_until(&web, LIVE, |r| r.status == "NOERROR" && r.answer.is_empty());
    report(store, "worker1", "10.1.0.21", "0", InstanceState::Healthy);
    dns.dig_until(&web, LIVE, |r| r.answer_data() == ["10.1.0.21"]);

    // From the config file: only the zones it lists.
    let config_dns = from_config(&etcd, &dir, &["ha.test"]);
    assert_eq!(config_dns.dig(&web).answer_data(), ["10.1.0.21"]);
    let reply = config_dns.dig(&["-x", "10.1.0.21"]);
    assert_eq!(reply.status, "REFUSED", "{}", reply.text);
    let reply = dns.dig(&["-x", "10.1.0.21"]);
    assert_eq!(
        reply.answer_data(),
        ["host-10-1-0-21.ha.test."],
        "{}",
        reply.text
    );

    // The store goes away: answers stay, health says so.
    let serial_before = soa_serial(&dns);
    let endpoint = etcd.endpoint.clone();
    drop(etcd);
    dns.wait_health("degraded");
    let (code, body) = dns.health();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"error\":\"store"), "{body}");
    assert_eq!(dns.dig(&web).answer_data(), ["10.1.0.21"]);
    assert!(dns.metrics().contains("uc_dns_store_connected 0"));
    assert!(dns.log_text().contains("answering from the last snapshot"));

    // It comes back empty, and the deployer, scheduler and agents write
    // again: uc-dns reads it all anew. Its revisions start over, the serial
    // does not go back.
    let _store = Etcd::start_at(&dir.join("store-again"), &endpoint);
    import(&endpoint, &ha_manifest());
    assign(&endpoint, "0", "worker1");
    assign(&endpoint, "1", "worker2");
    report(
        &endpoint,
        "worker1",
        "10.1.0.21",
        "0",
        InstanceState::Healthy,
    );
    report(
        &endpoint,
        "worker2",
        "10.1.0.22",
        "1",
        InstanceState::Healthy,
    );
    dns.wait_health("ok");
    dns.dig_until(&web, Duration::from_secs(5), both);
    assert!(
        soa_serial(&dns) > serial_before,
        "the zone changed, so its serial grew"
    );
}

fn soa_serial(dns: &Dns) -> u64 {
    let reply = dns.dig(&["ha.test", "SOA"]);
    let soa = reply.answer.first().expect("an SOA");
    soa.split(' ').nth(6).unwrap().parse().unwrap()
}

fn from_config(store: &Etcd, dir: &std::path::Path, zones: &[&str]) -> Dns {
    let port = free_port();
    let http_port = free_port();
    let config = uc_types::DnsConfig {
        schema_version: uc_types::SCHEMA_VERSION,
        cluster: "ha".to_owned(),
        node: "edge1".to_owned(),
        http_listen: format!("127.0.0.1:{http_port}").parse().unwrap(),
        store_endpoints: vec![store.endpoint.clone()],
        listen: vec![format!("127.0.0.1:{port}").parse().unwrap()],
        zones: zones.iter().map(|z| (*z).to_owned()).collect(),
    };
    let path = dir.join("dns.json");
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    let args = ["--config".to_owned(), path.display().to_string()];
    Dns::spawn(dir, "uc-dns-config", &args, port, http_port)
}

#[test]
fn help_names_the_flags_that_stand_in_for_the_config() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_uc-dns"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--store",
        "--listen",
        "--http",
        "--config",
        "--zone",
        "--udp-sockets",
        "--log-format",
    ] {
        assert!(help.contains(flag), "no {flag} in\n{help}");
    }
}
