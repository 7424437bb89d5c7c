//! The deployer's LB and DNS views against a real etcd holding the ha
//! example deployed, uc-lb statuses and extra zones put by hand (as uc-lb
//! and an operator would): `GET /api/v1/lb`, `/api/v1/dns`,
//! `/api/v1/dns/zones/<apex>` answer the uc-types views, and the dashboard
//! shows the same, every state in words and every store string escaped.

use std::collections::BTreeMap;

use serde_json::json;
use uc_deployer::cache::{Cache, LocalStore, SigningKey};
use uc_deployer::deploy::{deploy, DeployRequest};
use uc_deployer::{app, App, Store};
use uc_testkit::{free_port, http, Etcd, TestDir};
use uc_types::{keys, DnsView, DnsZoneRecords, LbBackendState, LbView};

/// Signs the (empty) binary cache the deployer serves beside its API.
const CACHE_KEY: &str = "uc-cache-1:dIbf+X4xryAERjId/qOdY5+3cl+5i1gbmnd0FPQgVmNAPu2irZV60PJEx74uWgcg8BBj1ewQOeI9NnZjtOyI8A==";

/// Deploys hosts/ha (no systems) into the store at `endpoint` and serves
/// the deployer on a free port; returns the port.
fn serve_deployed_ha(endpoint: String) -> u16 {
    let port = free_port();
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async move {
                let mut client = etcd_client::Client::connect([endpoint], None)
                    .await
                    .expect("etcd");
                let manifest: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/../../../hosts/ha/manifest.json"
                    ))
                    .expect("golden"),
                )
                .expect("json");
                let systems = BTreeMap::new();
                deploy(&mut client, DeployRequest { manifest, systems })
                    .await
                    .expect("deploy");
                let store = Store::default();
                let _ = store.set(client);
                let key = SigningKey::parse("the test key", CACHE_KEY).expect("key");
                let app = app(App {
                    store,
                    cache: std::sync::Arc::new(Cache::new(key, LocalStore::default())),
                    enrollment_token_file: "/nonexistent/enrollment-token".into(),
                    trusted_public_keys: vec![],
                });
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("bind");
                ready.send(()).expect("ready");
                axum::serve(listener, app).await.expect("serve");
            });
    });
    started.recv().expect("started");
    port
}

fn get<T: serde::de::DeserializeOwned>(port: u16, path: &str) -> T {
    let (status, body) = http(port, "GET", path, "");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|err| panic!("{path}: {err}: {body}"))
}

#[test]
fn lb_and_dns_views_in_the_api_and_on_the_dashboard() {
    let dir = TestDir::new("uc-deployer-edge-views");
    let etcd = Etcd::start(&dir.join("etcd"));
    let port = serve_deployed_ha(etcd.endpoint.clone());
    let put = |key: &str, value: &str| {
        etcd.ctl(&["put", key, value]);
    };

    // Before any uc-lb reports: the declared listener, its node without a report.
    let lb: LbView = get(port, "/api/v1/lb");
    let www = &lb.listeners["www"];
    assert_eq!(www.declared.as_ref().expect("declared").nodes, ["edge1"]);
    assert!(www.reports.is_empty(), "{www:?}");
    let (_, page) = http(port, "GET", "/", "");
    assert!(
        page.contains("<td>www (http port 80)</td><td>edge1</td><td></td><td>no uc-lb reports from this node</td><td></td><td class=\"no-report\">no report</td>"),
        "{page}"
    );

    // What uc-lb writes (report.rs), one backend in each state; a listener
    // that fails to bind with markup in its error; a report of a listener
    // no longer declared; a report that is not JSON.
    put(
        &keys::lb_listener_status("edge1", "www"),
        &json!({"node": "edge1", "listener": "www", "protocol": "http",
            "address": "10.1.0.31:80", "serving": true, "error": null,
            "backends": [
                {"address": "10.1.0.21:8080", "state": "up"},
                {"address": "10.1.0.22:8080", "state": "down"},
                {"address": "10.1.0.23:8080", "state": "unknown"},
                {"address": "10.1.0.24:8080", "state": "draining", "connections": 2}]})
        .to_string(),
    );
    put(
        &keys::lb_listener_status("edge2", "www"),
        &json!({"node": "edge2", "listener": "www", "protocol": "http", "address": null,
            "serving": false, "error": "cannot bind <0.0.0.0:80>: \"in use\" & more",
            "backends": []})
        .to_string(),
    );
    put(
        &keys::lb_listener_status("edge1", "old"),
        &json!({"node": "edge1", "listener": "old", "protocol": "tcp",
            "address": "10.1.0.100:9000", "serving": true, "error": null,
            "backends": [{"address": "10.1.0.21:9000", "state": "up"}],
            "vip": {"holder": "edge2", "held": false, "interface": null, "error": null}})
        .to_string(),
    );
    put(&keys::lb_listener_status("edge3", "www"), "not json");
    // A node a rollout took out of traffic, as the deployer writes it.
    put(
        &keys::node_traffic("worker1"),
        &json!({"drained": true, "reason": "rollout <7>", "since": 9, "rollout": 7}).to_string(),
    );

    let lb: LbView = get(port, "/api/v1/lb");
    let www = &lb.listeners["www"];
    let edge1 = &www.reports["edge1"];
    assert!(edge1.serving);
    let states: Vec<LbBackendState> = edge1.backends.iter().map(|b| b.state).collect();
    use LbBackendState::*;
    assert_eq!(states, [Up, Down, Unknown, Draining]);
    assert_eq!(edge1.backends[3].connections, Some(2));
    assert_eq!(lb.drained_nodes["worker1"].reason, "rollout <7>");
    assert_eq!(
        www.reports["edge2"].error.as_deref(),
        Some("cannot bind <0.0.0.0:80>: \"in use\" & more")
    );
    assert!(www.unreadable["edge3"].contains("expected"), "{www:?}");
    assert!(lb.listeners["old"].declared.is_none());
    assert_eq!(lb.listeners["old"].reports["edge1"].backends.len(), 1);

    let (status, page) = http(port, "GET", "/", "");
    assert_eq!(status, 200);
    let row = |backend: &str, class: &str, health: &str| {
        format!("<td>www (http port 80)</td><td>edge1</td><td>10.1.0.31:80</td><td>serving</td><td>{backend}</td><td class=\"{class}\">{health}</td>")
    };
    for (backend, class, health) in [
        ("10.1.0.21:8080", "up", "up"),
        ("10.1.0.22:8080", "down", "down"),
        ("10.1.0.23:8080", "unknown", "unknown (not probed yet)"),
        (
            "10.1.0.24:8080",
            "draining",
            "draining (2 open connections)",
        ),
    ] {
        assert!(page.contains(&row(backend, class, health)), "{page}");
    }
    assert!(
        page.contains("<td>edge2</td><td></td><td>not serving: cannot bind &lt;0.0.0.0:80&gt;: &quot;in use&quot; &amp; more</td><td>none</td>"),
        "{page}"
    );
    assert!(!page.contains("<0.0.0.0:80>"), "{page}");
    assert!(
        page.contains("<td>edge3</td><td></td><td>unreadable report: expected"),
        "{page}"
    );
    assert!(
        page.contains("<td>old (no longer declared)</td><td>edge1</td><td>10.1.0.100:9000 (VIP, held by edge2)</td>"),
        "{page}"
    );
    assert!(
        page.contains("<li>worker1: rollout &lt;7&gt; (since 9)</li>"),
        "{page}"
    );

    // Zones: the ha example's two, one added by hand with markup in a name
    // server and a secondary, one whose declaration does not parse.
    put(
        &keys::dns_zone("extra.test"),
        &json!({"ttl": 60, "soa": {"email": "h.extra.test", "refresh": 1, "retry": 1,
            "expire": 1, "minimum": 1}, "nameservers": ["<b>ns</b>.extra.test."],
            "records": [{"name": "a", "type": "A", "ttl": 60, "values": ["192.0.2.1"],
                "service": null}],
            "ptrPatterns": [], "secondaries": [{"address": "192.0.2.53", "port": 5353}]})
        .to_string(),
    );
    put(&keys::dns_zone("broken.test"), "{");
    let dns: DnsView = get(port, "/api/v1/dns");
    let apexes: Vec<&str> = dns.zones.keys().map(String::as_str).collect();
    assert_eq!(
        apexes,
        [
            "0.1.10.in-addr.arpa",
            "broken.test",
            "extra.test",
            "ha.test"
        ]
    );
    let ha = &dns.zones["ha.test"];
    assert_eq!((ha.records, ha.ptr_patterns), (3, 0));
    assert_eq!(ha.nameservers, ["ns1.ha.test."]);
    assert_eq!(ha.servers.len(), 1, "{ha:?}");
    assert_eq!(ha.servers[0].node, "edge1");
    assert_eq!(ha.servers[0].report, None);
    assert_eq!(ha.serving_text(), "edge1: no report");
    assert!(ha.revision > 0);
    assert_eq!(dns.zones["0.1.10.in-addr.arpa"].ptr_patterns, 1);
    let extra = &dns.zones["extra.test"];
    assert!(extra.revision > ha.revision, "{extra:?} {ha:?}");
    assert!(extra.servers.is_empty());
    assert_eq!(extra.secondaries[0].port, 5353);
    let broken = &dns.zones["broken.test"];
    assert!(
        broken
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("the declaration does not parse")),
        "{broken:?}"
    );

    let records: DnsZoneRecords = get(port, "/api/v1/dns/zones/ha.test.");
    assert_eq!(records.apex, "ha.test");
    assert_eq!(records.revision, ha.revision);
    let names: Vec<&str> = records.records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["ns1", "www", "web"]);
    assert_eq!(records.records[2].service.as_deref(), Some("web"));
    let (status, body) = http(port, "GET", "/api/v1/dns/zones/nope.test", "");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no zone nope.test in the store"), "{body}");
    let (status, body) = http(port, "GET", "/api/v1/dns/zones/broken.test", "");
    assert_eq!(status, 422, "{body}");

    // edge1's uc-dns reports serving ha.test (not the reverse zone), with
    // markup in its last error; then a report that does not parse.
    put(
        &keys::dns_server_status("edge1"),
        &json!({"node": "edge1", "health": "degraded", "storeRevision": 40, "storeLag": 0,
            "lastError": "<i>store</i> gone",
            "zones": {"ha.test": {"serial": 41, "records": 4, "signed": false}}})
        .to_string(),
    );
    let dns: DnsView = get(port, "/api/v1/dns");
    let report = dns.zones["ha.test"].servers[0]
        .report
        .clone()
        .expect("a report");
    assert_eq!(
        (report.serial, report.health.as_str()),
        (Some(41), "degraded")
    );
    assert_eq!(
        dns.zones["0.1.10.in-addr.arpa"].serving_text(),
        "edge1: not serving this zone, degraded (last error: <i>store</i> gone)"
    );
    let (_, page) = http(port, "GET", "/", "");
    assert!(
        page.contains(
            "<td>edge1: serial 41, degraded (last error: &lt;i&gt;store&lt;/i&gt; gone)</td>"
        ),
        "{page}"
    );
    put(&keys::dns_server_status("edge1"), "{");
    let dns: DnsView = get(port, "/api/v1/dns");
    let text = dns.zones["ha.test"].serving_text();
    assert!(
        text.starts_with(
            "edge1: not serving this zone, unreadable (last error: the report does not parse"
        ),
        "{text}"
    );
    put(
        &keys::dns_server_status("edge1"),
        &json!({"node": "edge1", "health": "ok",
            "zones": {"ha.test": {"serial": 42, "signed": true}}})
        .to_string(),
    );

    let (_, page) = http(port, "GET", "/", "");
    assert!(page.contains("<h2>DNS zones</h2>"), "{page}");
    assert!(
        page.contains(&format!(
            "<tr><td>ha.test</td><td>{}</td><td>3</td><td>0</td><td>ns1.ha.test.</td><td></td><td>edge1 on 10.1.0.31:53 (health: http://10.1.0.31:9153/health)</td><td>edge1: serial 42 (signed), ok</td><td></td></tr>",
            ha.revision
        )),
        "{page}"
    );
    assert!(
        page.contains("<td>&lt;b&gt;ns&lt;/b&gt;.extra.test.</td><td>192.0.2.53:5353</td><td>no uc-dns in the deployed manifest</td><td></td>"),
        "{page}"
    );
    assert!(!page.contains("<b>ns</b>"), "{page}");
    assert!(
        page.contains("<td>broken.test</td>") && page.contains("the declaration does not parse"),
        "{page}"
    );
}
