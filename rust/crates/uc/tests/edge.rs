//! `uc lb` and `uc dns` against the deployer's API (in-process, on a real
//! etcd) after `uc deploy` of the ha example: the listener before and after
//! a uc-lb reports (its status put as uc-lb writes it), the zones and one
//! zone's records, as tables and as the deployer's JSON.

mod common;

use common::uc;
use uc_testkit::{Etcd, TestDir};
use uc_types::{keys, DnsView, DnsZoneRecords, LbView};

const HA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../hosts/ha/manifest.json"
);

#[test]
fn lb_listeners_and_dns_zones() {
    let dir = TestDir::new("uc-cli-edge");
    let etcd = Etcd::start(&dir.join("etcd"));
    let deployer = common::serve_deployer_api(etcd.endpoint.clone(), |_| {});
    let d = deployer.as_str();

    let (ok, out, _) = uc(&["lb", "--deployer", d]);
    assert!(ok && out == "no listeners\n", "{out}");
    let (ok, out, _) = uc(&["dns", "--deployer", d]);
    assert!(ok && out == "no zones\n", "{out}");

    let (ok, out, err) = uc(&["deploy", HA, "--deployer", d]);
    assert!(ok, "{out}{err}");

    // Declared on edge1, where no uc-lb runs yet.
    let (ok, out, err) = uc(&["lb", "--deployer", d]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "LISTENER  PROTOCOL  PORT  LB NODE  LISTENING ON  STATE      BACKEND  HEALTH\n\
         www       http      80    edge1                  no report\n\
         \n\
         www on edge1: no report (no uc-lb running there?)\n"
    );

    // What uc-lb on edge1 writes (uc-lb's report.rs), and a second LB node
    // whose port is taken.
    let report = serde_json::json!({"node": "edge1", "listener": "www", "protocol": "http",
        "address": "10.1.0.31:80", "serving": true, "error": null,
        "backends": [{"address": "10.1.0.21:8080", "state": "up"},
            {"address": "10.1.0.22:8080", "state": "down"},
            {"address": "10.1.0.23:8080", "state": "draining", "connections": 1}]});
    etcd.ctl(&[
        "put",
        &keys::lb_listener_status("edge1", "www"),
        &report.to_string(),
    ]);
    let failed = serde_json::json!({"node": "edge2", "listener": "www", "protocol": "http",
        "address": null, "serving": false, "error": "cannot bind 10.1.0.32:80: address in use",
        "backends": []});
    etcd.ctl(&[
        "put",
        &keys::lb_listener_status("edge2", "www"),
        &failed.to_string(),
    ]);
    etcd.ctl(&[
        "put",
        &keys::node_traffic("worker2"),
        r#"{"drained": true, "reason": "rollout 2", "since": 5, "rollout": 2}"#,
    ]);
    let (ok, out, err) = uc(&["lb", "--deployer", d]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "LISTENER  PROTOCOL  PORT  LB NODE  LISTENING ON  STATE        BACKEND         HEALTH\n\
         www       http      80    edge1    10.1.0.31:80  serving      10.1.0.21:8080  up\n\
         www       http      80    edge1    10.1.0.31:80  serving      10.1.0.22:8080  down\n\
         www       http      80    edge1    10.1.0.31:80  serving      10.1.0.23:8080  draining (1 open connection)\n\
         www       http      80    edge2                  not serving  none\n\
         \n\
         www on edge2: cannot bind 10.1.0.32:80: address in use\n\
         worker2: out of traffic (rollout 2, since 5): its instances drain from every listener\n"
    );
    let (ok, out, err) = uc(&["lb", "--json", "--deployer", d]);
    assert!(ok, "{err}");
    let view: LbView = serde_json::from_str(&out).expect("uc lb --json is an LbView");
    let www = &view.listeners["www"];
    assert_eq!(
        serde_json::to_value(&www.reports["edge1"]).expect("json"),
        report
    );
    assert_eq!(www.declared.as_ref().expect("declared").port, 80);

    // Zones: the ha example's, served by edge1, whose uc-dns reports
    // serving ha.test only (a control character in its error is escaped).
    let status = serde_json::json!({"node": "edge1", "health": "ok", "lastError": "a\u{1b}[31mb",
        "zones": {"ha.test": {"serial": 17, "records": 4, "signed": false}}});
    etcd.ctl(&[
        "put",
        &keys::dns_server_status("edge1"),
        &status.to_string(),
    ]);
    let (ok, out, err) = uc(&["dns", "--deployer", d]);
    assert!(ok, "{err}");
    let revision = etcd.ctl(&["get", &keys::dns_zone("ha.test"), "-w", "json"]);
    let revision: serde_json::Value = serde_json::from_str(&revision).expect("etcdctl json");
    let revision = revision["kvs"][0]["mod_revision"]
        .as_i64()
        .expect("revision");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(
        rows[0],
        "ZONE                 REVISION  RECORDS  PTR PATTERNS  SECONDARIES  SERVED BY                                                     SERVING NOW"
    );
    let row = |zone: &str, records: usize, patterns: usize, serving: &str| {
        format!(
            "{zone:19}  {revision:<8}  {records:<7}  {patterns:<12}  {:11}  edge1 on 10.1.0.31:53 (health: http://10.1.0.31:9153/health)  {serving}",
            ""
        )
    };
    assert_eq!(
        rows[1],
        row(
            "0.1.10.in-addr.arpa",
            0,
            1,
            "edge1: not serving this zone, ok (last error: a\\u{1b}[31mb)"
        ),
        "{out}"
    );
    assert_eq!(
        rows[2],
        row(
            "ha.test",
            3,
            0,
            "edge1: serial 17, ok (last error: a\\u{1b}[31mb)"
        ),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'), "{out}");
    assert!(
        out.contains("each uc-dns' SOA serial is this or later"),
        "{out}"
    );
    let (ok, out, err) = uc(&["dns", "--json", "--deployer", d]);
    assert!(ok, "{err}");
    let view: DnsView = serde_json::from_str(&out).expect("uc dns --json is a DnsView");
    assert_eq!(view.zones["ha.test"].revision, revision);
    assert_eq!(view.zones["ha.test"].servers[0].node, "edge1");
    let report = view.zones["ha.test"].servers[0].report.as_ref();
    assert_eq!(report.and_then(|r| r.serial), Some(17));

    let (ok, out, err) = uc(&["dns", "records", "ha.test.", "--deployer", d]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!(
            "zone ha.test (declared at store revision {revision})\n\
             NAME  TYPE  TTL  VALUES\n\
             ns1   A     300  10.1.0.31\n\
             www   A     300  10.1.0.31\n\
             web   A     300  (healthy instances of service web)\n"
        )
    );
    let (ok, out, err) = uc(&["dns", "records", "0.1.10.in-addr.arpa", "--deployer", d]);
    assert!(ok, "{err}");
    assert!(
        out.ends_with(
            "NAME  TYPE  TTL  VALUES\nPTR pattern: 10.1.0.0/24 -> host-{a}-{b}-{c}-{d}.ha.test.\n"
        ),
        "{out}"
    );
    let (ok, out, err) = uc(&["dns", "records", "ha.test", "--json", "--deployer", d]);
    assert!(ok, "{err}");
    let records: DnsZoneRecords = serde_json::from_str(&out).expect("a DnsZoneRecords");
    assert_eq!(records.records.len(), 3);

    let (ok, _, err) = uc(&["dns", "records", "nope.test", "--deployer", d]);
    assert!(!ok);
    assert_eq!(
        err,
        "uc: deployer answered 404: no zone nope.test in the store (see GET /api/v1/dns)\n"
    );
}
