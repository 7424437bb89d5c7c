//! Online DNSSEC signing against real validators: zones signed with keys
//! made by `openssl genpkey` (as docs/dns.md tells an operator), served by
//! the uc-dns binary from a real store, validated by BIND's `delv` from a
//! trust anchor made of the DS uc-dns publishes (`/dnssec/<zone>/ds`),
//! with no network beyond loopback; `kdig +dnssec` shows the signatures.
//! Covered: an A answer, a CNAME chain, a wildcard answer, NXDOMAIN,
//! NODATA, PTRs from IPv4 and IPv6 ptrPatterns, a service record, an unsigned zone
//! staying unsigned, a change re-signed under a new serial, a zone whose
//! key file is missing served unsigned while the rest stays signed, and
//! `uc-dns dnssec-ds` giving the DS from the key file alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{put_zone, zone_json, Dns};
use uc_testkit::{http, wait_for, Etcd, TestDir};
use uc_types::{keys, Assignment, InstancePhase, InstanceState, InstanceStatus};

fn installed(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// A key as docs/dns.md makes one.
fn make_key(path: &Path) {
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(path)
        .status()
        .expect("run openssl");
    assert!(status.success());
}

/// The signed IPv6 reverse zone: 2001:db8::/32.
const IPV6_ZONE: &str = "8.b.d.0.1.0.0.2.ip6.arpa";

/// `zone_json` with `dnssec` set.
fn signed(zone: String, key_file: &Path) -> String {
    let mut zone: serde_json::Value = serde_json::from_str(&zone).unwrap();
    zone["dnssec"] = serde_json::json!({"enable": true, "keyFile": key_file.display().to_string()});
    zone.to_string()
}

fn example_zone(www: &str) -> String {
    zone_json(
        &["ns1.example.test."],
        &[
            ("ns1", "A", &["192.0.2.53"]),
            ("www", "A", &[www]),
            ("alias", "CNAME", &["www"]),
            ("chain", "CNAME", &["alias"]),
            ("*.wild", "A", &["192.0.2.77"]),
            ("deep.a.b", "TXT", &["\"below an empty non-terminal\""]),
        ],
        &[],
    )
}

/// A healthy instance of service `web` at 192.0.2.80.
fn run_web(store: &Etcd) {
    let assignment = Assignment {
        node: "n1".to_owned(),
        ports: BTreeMap::from([("http".to_owned(), 8080)]),
    };
    store.ctl(&[
        "put",
        &keys::service_assignment("web", "0"),
        &serde_json::to_string(&assignment).unwrap(),
    ]);
    let status = InstanceStatus {
        service: "web".to_owned(),
        id: "0".to_owned(),
        state: InstanceState::Healthy,
        phase: InstancePhase::Running,
        pid: Some(4242),
        restarts: 0,
        address: "192.0.2.80".parse().unwrap(),
        ports: BTreeMap::from([("http".to_owned(), 8080)]),
        since: 0,
        message: None,
    };
    store.ctl(&[
        "put",
        &keys::instance_status("n1", &keys::instance_name("web", "0")),
        &serde_json::to_string(&status).unwrap(),
    ]);
}

/// The DS uc-dns publishes for `zone`, as a delv trust anchor file.
fn anchor(dns: &Dns, dir: &Path, zone: &str) -> std::path::PathBuf {
    let (code, ds) = http(dns.http_port, "GET", &format!("/dnssec/{zone}/ds"), "");
    assert_eq!(code, 200, "{ds}");
    // "<zone>. IN DS <tag> 13 2 <hex>"
    let fields: Vec<&str> = ds.split_whitespace().collect();
    let [owner, "IN", "DS", tag, "13", "2", digest] = fields[..] else {
        panic!("unexpected DS line {ds:?}");
    };
    let file = dir.join(format!("{zone}.anchor"));
    let text = format!("trust-anchors {{ {owner} static-ds {tag} 13 2 \"{digest}\"; }};\n");
    std::fs::write(&file, text).unwrap();
    file
}

/// delv's verdict for `name` `qtype` (followed by any delv options, such
/// as `+tcp`), validating from `zone`'s anchor only.
fn delv(dns: &Dns, anchors: &Path, zone: &str, name: &str, qtype: &str) -> String {
    let output = Command::new("delv")
        .args(["@127.0.0.1", "-p", &dns.port.to_string(), "-a"])
        .arg(anchors)
        .arg(format!("+root={zone}"))
        .args(["+nomtrace", "+norrcomments", name])
        .args(qtype.split_whitespace())
        .output()
        .expect("run delv");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_validated(dns: &Dns, anchors: &Path, zone: &str, name: &str, qtype: &str, expect: &str) {
    let out = delv(dns, anchors, zone, name, qtype);
    assert!(
        out.contains("fully validated") && out.contains(expect),
        "delv {name} {qtype}: wanted \"fully validated\" and {expect:?}:\n{out}"
    );
}

fn kdig(dns: &Dns, args: &[&str]) -> String {
    let output = Command::new("kdig")
        .args([
            "@127.0.0.1",
            "-p",
            &dns.port.to_string(),
            "+dnssec",
            "+norecurse",
        ])
        .args(args)
        .output()
        .expect("run kdig");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn signed_answers_validate_with_delv() {
    if !installed("delv") || !installed("kdig") || !installed("openssl") {
        eprintln!("SKIP: delv, kdig or openssl not installed (Debian's bind9-dnsutils, knot-dnsutils, openssl)");
        return;
    }
    let dir = TestDir::new("uc-dns-dnssec");
    let store = Etcd::start(&dir.join("store"));
    let example_key = dir.join("example.test.pem");
    let reverse_key = dir.join("reverse.pem");
    make_key(&example_key);
    make_key(&reverse_key);
    let mut example = example_zone("192.0.2.10");
    let mut with_web: serde_json::Value = serde_json::from_str(&example).unwrap();
    with_web["records"].as_array_mut().unwrap().push(
        serde_json::json!({"name": "web", "type": "A", "ttl": 60, "values": [], "service": "web"}),
    );
    example = with_web.to_string();
    put_zone(&store, "example.test", &signed(example, &example_key));
    let reverse = zone_json(&[], &[], &[("192.0.2.0/24", "host-{d}.example.test.")]);
    put_zone(
        &store,
        "2.0.192.in-addr.arpa",
        &signed(reverse, &reverse_key),
    );
    let reverse6_key = dir.join("reverse6.pem");
    make_key(&reverse6_key);
    let reverse6 = zone_json(&[], &[], &[("2001:db8::/64", "host-{ip}.example.test.")]);
    put_zone(&store, IPV6_ZONE, &signed(reverse6, &reverse6_key));
    put_zone(
        &store,
        "plain.test",
        &zone_json(&[], &[("www", "A", &["192.0.2.99"])], &[]),
    );
    run_web(&store);
    let dns = Dns::start(&store, &dir);
    let anchors = anchor(&dns, &dir, "example.test");
    let reverse_anchors = anchor(&dns, &dir, "2.0.192.in-addr.arpa");
    let reverse6_anchors = anchor(&dns, &dir, IPV6_ZONE);
    let log = dns.log_text();
    assert!(log.contains("DNSSEC key loaded"), "{log}");
    // The DS an operator gets from the key file alone is the one served.
    let offline = Command::new(env!("CARGO_BIN_EXE_uc-dns"))
        .args(["dnssec-ds", "example.test"])
        .arg(&example_key)
        .output()
        .unwrap();
    let offline = String::from_utf8_lossy(&offline.stdout).into_owned();
    let (_, served) = http(dns.http_port, "GET", "/dnssec/example.test/ds", "");
    assert!(offline.starts_with(&served), "{offline} vs {served}");
    assert!(offline.contains("IN DNSKEY 257 3 13 "), "{offline}");

    let zone = "example.test";
    let cases = [
        ("www.example.test", "A", "192.0.2.10"),
        ("example.test", "DNSKEY", "DNSKEY"),
        ("example.test", "SOA", "SOA"),
        ("chain.example.test", "A", "192.0.2.10"),
        ("Any.Wild.example.test", "A", "192.0.2.77"),
        ("web.example.test", "A", "192.0.2.80"),
        ("nope.example.test", "A", "NXDOMAIN"),
        ("x.y.nope.example.test", "A", "NXDOMAIN"),
        ("nope.example.test", "A +tcp", "NXDOMAIN"),
        ("www.example.test", "TXT", "NXRRSET"),
        ("a.b.example.test", "A", "NXRRSET"),
        ("any.wild.example.test", "TXT", "NXRRSET"),
    ];
    for (name, qtype, expect) in cases {
        assert_validated(&dns, &anchors, zone, name, qtype, expect);
    }
    let reverse = "2.0.192.in-addr.arpa";
    for (qtype, expect) in [("PTR", "host-5.example.test."), ("A", "NXRRSET")] {
        let name = "5.2.0.192.in-addr.arpa";
        assert_validated(&dns, &reverse_anchors, reverse, name, qtype, expect);
    }
    // IPv6: 2001:db8::5 in the /64, a shorter name inside it (an empty
    // non-terminal), 2001:db8:0:1::5 outside it, and a name below an address.
    let address = format!("5.{}.{IPV6_ZONE}", ["0"; 23].join("."));
    let outside = format!(
        "5.{}.1.{}.{IPV6_ZONE}",
        ["0"; 15].join("."),
        ["0"; 7].join(".")
    );
    let cases = [
        (address.clone(), "PTR", "host-2001-db8--5.example.test."),
        (address.clone(), "AAAA", "NXRRSET"),
        (format!("0.0.0.0.{IPV6_ZONE}"), "PTR", "NXRRSET"),
        (outside, "PTR", "NXDOMAIN"),
        (format!("x.{address}"), "PTR", "NXDOMAIN"),
    ];
    for (name, qtype, expect) in cases {
        assert_validated(&dns, &reverse6_anchors, IPV6_ZONE, &name, qtype, expect);
    }

    // kdig shows the signatures; the unsigned zone has none, and no DO bit, no RRSIG.
    let signed_answer = kdig(&dns, &["www.example.test", "A"]);
    assert!(
        signed_answer.contains("RRSIG\tA 13 3 300"),
        "{signed_answer}"
    );
    let denial = kdig(&dns, &["nope.example.test", "A"]);
    assert!(
        denial.contains("NXDOMAIN") && denial.contains("\tNSEC\t"),
        "{denial}"
    );
    let plain = kdig(&dns, &["www.plain.test", "A"]);
    assert!(
        plain.contains("192.0.2.99") && !plain.contains("RRSIG"),
        "{plain}"
    );
    let without_do = dns.dig(&["www.example.test", "A"]);
    assert!(!without_do.text.contains("RRSIG"), "{}", without_do.text);

    // A change is signed under the new serial.
    let serial = |dns: &Dns| {
        dns.dig(&["example.test", "SOA", "+short"])
            .text
            .split_whitespace()
            .nth(2)
            .map(str::to_owned)
    };
    let before = serial(&dns);
    put_zone(
        &store,
        "example.test",
        &signed(example_zone("192.0.2.11"), &example_key),
    );
    dns.dig_until(
        &["www.example.test", "A"],
        Duration::from_secs(5),
        |reply| {
            reply
                .answer_data()
                .iter()
                .any(|data| data.contains("192.0.2.11"))
        },
    );
    assert_ne!(serial(&dns), before);
    assert_validated(&dns, &anchors, zone, "www.example.test", "A", "192.0.2.11");
    assert_validated(&dns, &anchors, zone, "example.test", "SOA", "SOA");

    // A zone whose key is missing is served unsigned, loudly; the rest stays signed.
    let missing = dir.join("missing.pem");
    put_zone(
        &store,
        "broken.test",
        &signed(
            zone_json(&[], &[("www", "A", &["192.0.2.98"])], &[]),
            &missing,
        ),
    );
    dns.wait_health("degraded");
    let (_, health) = dns.health();
    assert!(
        health.contains("broken.test") && health.contains("missing.pem"),
        "{health}"
    );
    let broken = kdig(&dns, &["www.broken.test", "A"]);
    assert!(
        broken.contains("192.0.2.98") && !broken.contains("RRSIG"),
        "{broken}"
    );
    assert_validated(&dns, &anchors, zone, "www.example.test", "A", "192.0.2.11");
    wait_for("the log line", Duration::from_secs(2), || {
        dns.log_text()
            .contains("DNSSEC key unreadable")
            .then_some(())
    });
    uc_testkit::assert_metrics(
        &dns.metrics(),
        &[
            "uc_dns_zone_signed{zone=\"example.test.\"} 1",
            "uc_dns_zone_signed{zone=\"broken.test.\"} 0",
        ],
    );
    let (code, why) = http(dns.http_port, "GET", "/dnssec/broken.test/ds", "");
    assert_eq!(code, 404);
    assert!(why.contains("missing.pem"), "{why}");
}
