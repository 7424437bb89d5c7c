//! Knot DNS as a secondary of uc-dns: the zone lists knotd (127.0.0.2) as
//! secondary; knotd transfers it and answers as uc-dns does, a change in
//! the store reaches knotd within seconds through NOTIFY and IXFR, and a
//! client at an address the zone does not list (127.0.0.3) is refused.
//! Prints SKIP without `knotd` (Debian's knot) or `kdig` (knot-dnsutils).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{put_zone, zone_json, Dns, Reply};
use uc_testkit::{free_port, wait_for, Etcd, KillOnDrop, TestDir};

const KNOT: &str = "127.0.0.2";
const UNLISTED: &str = "127.0.0.3";

/// A zone whose AXFR takes several messages: `BIG` TXT records of ~520
/// bytes each (the declaration stays below etcdctl's argument limit).
const BIG: usize = 150;

fn big_zone(knot_port: u16) -> String {
    let names: Vec<String> = (0..BIG).map(|i| format!("host-{i}")).collect();
    let text = format!("\"{}\" \"{}\"", "a".repeat(255), "b".repeat(255));
    let values = [text.as_str()];
    let records: Vec<(&str, &str, &[&str])> = names
        .iter()
        .map(|name| (name.as_str(), "TXT", &values[..]))
        .collect();
    with_secondary(&zone_json(&[], &records, &[]), knot_port)
}

fn with_secondary(json: &str, knot_port: u16) -> String {
    let mut zone: serde_json::Value = serde_json::from_str(json).unwrap();
    zone["secondaries"] = serde_json::json!([{"address": KNOT, "port": knot_port}]);
    // Through the contract type, as the deployer writes it.
    let typed: uc_types::Zone = serde_json::from_value(zone).unwrap();
    serde_json::to_string(&typed).unwrap()
}

/// The zone, with knotd at `KNOT`:`knot_port` as its secondary.
fn zone(knot_port: u16, extra: &[(&str, &str, &[&str])]) -> String {
    let mut records: Vec<(&str, &str, &[&str])> = vec![
        ("ns1", "A", &["192.0.2.53"]),
        ("www", "A", &["192.0.2.10", "192.0.2.11"]),
        ("alias", "CNAME", &["www"]),
        ("mail", "MX", &["10 mx"]),
        ("mx", "A", &["192.0.2.25"]),
        ("txt", "TXT", &["\"hello world\""]),
        ("_sip._tcp", "SRV", &["0 5 5060 sip"]),
        ("sip", "AAAA", &["2001:db8::5"]),
        ("a.b.c", "A", &["192.0.2.30"]),
        ("*.w", "TXT", &["\"wild\""]),
        ("sub", "NS", &["ns.sub"]),
        ("ns.sub", "A", &["192.0.2.50"]),
    ];
    records.extend_from_slice(extra);
    with_secondary(&zone_json(&["ns1.example.test."], &records, &[]), knot_port)
}

fn knot(dir: &Path, port: u16, primary_port: u16) -> KillOnDrop {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let config = format!(
        "server:\n    listen: {KNOT}@{port}\n    rundir: {dir}\n\
         database:\n    storage: {dir}/db\n\
         remote:\n  - id: primary\n    address: 127.0.0.1@{primary_port}\n    via: {KNOT}\n\
         acl:\n  - id: notify-from-primary\n    address: 127.0.0.1\n    action: notify\n\
         zone:\n  - domain: example.test\n    storage: {dir}/zones\n    master: primary\n    acl: notify-from-primary\n\
         \x20 - domain: big.test\n    storage: {dir}/zones\n    master: primary\n    acl: notify-from-primary\n\
         log:\n  - target: stderr\n    any: info\n",
        dir = dir.display()
    );
    common::start_knotd(dir, &config)
}

/// `dig` at `server`:`port` from `source`, parsed.
fn dig(server: &str, port: u16, source: &str, args: &[&str]) -> Reply {
    let output = Command::new("dig")
        .args([&format!("@{server}"), "-p", &port.to_string(), "-b", source])
        .args(["+norecurse", "+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("run dig");
    Reply::parse(&String::from_utf8_lossy(&output.stdout))
}

/// The SOA serial in an answer or authority section.
fn serial(reply: &Reply) -> Option<u64> {
    let soa = reply
        .answer
        .iter()
        .chain(&reply.authority)
        .find(|line| line.split(' ').nth(3) == Some("SOA"))?;
    soa.split(' ').nth(6)?.parse().ok()
}

/// Status, AA and sorted sections: what must be the same at both servers.
fn essence(reply: &Reply) -> String {
    let sorted = |lines: &[String]| {
        let mut lines = lines.to_vec();
        lines.sort();
        lines.join("\n")
    };
    format!(
        "{} aa={}\n{}\n--\n{}\n--\n{}",
        reply.status,
        reply.has_flag("aa"),
        sorted(&reply.answer),
        sorted(&reply.authority),
        sorted(&reply.additional)
    )
}

const QUERIES: &[&str] = &[
    "example.test SOA",
    "example.test NS",
    "www.example.test A",
    "alias.example.test A",
    "mail.example.test MX",
    "txt.example.test TXT",
    "_sip._tcp.example.test SRV",
    "c.example.test A",
    "x.w.example.test TXT",
    "host.sub.example.test A",
    "nope.example.test A",
    "new.example.test A",
];

fn installed(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

fn metric(dns: &Dns, line: &str) -> f64 {
    dns.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn knot_as_secondary_follows_uc_dns() {
    if !installed("knotd") || !installed("kdig") {
        eprintln!("SKIP: knotd or kdig not installed (Debian's knot, knot-dnsutils); secondaries not tested");
        return;
    }
    let started = Instant::now();
    let dir = TestDir::new("uc-dns-secondary");
    let store = Etcd::start(&dir.join("store"));
    let knot_port = free_port();
    put_zone(&store, "example.test", &zone(knot_port, &[]));
    put_zone(&store, "big.test", &big_zone(knot_port));
    let dns = Dns::start(&store, &dir);
    let _knot = knot(&dir, knot_port, dns.port);

    // knotd transfers the zone (at its start, or on uc-dns' NOTIFY) and
    // answers as uc-dns does.
    let ours = serial(&dns.dig(&["example.test", "SOA"])).expect("uc-dns' SOA");
    wait_for("knotd serving the zone", Duration::from_secs(10), || {
        (serial(&dig(KNOT, knot_port, KNOT, &["example.test", "SOA"])) == Some(ours)).then_some(())
    });
    for query in QUERIES {
        let args: Vec<&str> = query.split(' ').collect();
        let theirs = dig(KNOT, knot_port, KNOT, &args);
        let mine = dns.dig(&args);
        assert_eq!(
            essence(&theirs),
            essence(&mine),
            "dig {query}: knotd, then uc-dns"
        );
    }

    // A change reaches knotd through NOTIFY and IXFR within seconds.
    let changed = Instant::now();
    put_zone(
        &store,
        "example.test",
        &zone(knot_port, &[("new", "A", &["192.0.2.99"])]),
    );
    dns.dig_until(&["new.example.test", "A"], Duration::from_secs(5), |r| {
        r.answer_data() == ["192.0.2.99"]
    });
    let new_serial = serial(&dns.dig(&["example.test", "SOA"])).unwrap();
    assert!(new_serial > ours);
    wait_for("knotd has the change", Duration::from_secs(5), || {
        let reply = dig(KNOT, knot_port, KNOT, &["new.example.test", "A"]);
        let soa = serial(&dig(KNOT, knot_port, KNOT, &["example.test", "SOA"]));
        (reply.answer_data() == ["192.0.2.99"] && soa == Some(new_serial)).then_some(())
    });
    eprintln!(
        "knotd had the change {:?} after the store",
        changed.elapsed()
    );
    let incremental = "uc_dns_transfers_total{type=\"IXFR\",answer=\"incremental\"}";
    assert!(metric(&dns, incremental) >= 1.0, "{}", dns.metrics());
    let acknowledged = "uc_dns_notifies_total{zone=\"example.test.\",result=\"acknowledged\"}";
    assert!(metric(&dns, acknowledged) >= 1.0, "{}", dns.metrics());

    // The difference knotd applied, as kdig sees it: one condensed delta.
    let ixfr = Command::new("kdig")
        .args(["-b", KNOT, "@127.0.0.1", "-p", &dns.port.to_string()])
        .args(["example.test", &format!("IXFR={ours}"), "+nocomments"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ixfr.stdout);
    let delta: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            match fields[3] {
                "SOA" => format!("SOA {}", fields[6]),
                _ => fields.join(" "),
            }
        })
        .collect();
    let (old, new) = (format!("SOA {ours}"), format!("SOA {new_serial}"));
    assert_eq!(
        delta,
        [
            &new,
            &old,
            &new,
            "new.example.test. 300 IN A 192.0.2.99",
            &new
        ],
        "{text}"
    );
    // kdig, from the listed address, gets a whole AXFR: SOA first and last.
    let axfr = Command::new("kdig")
        .args([
            "-b",
            KNOT,
            "@127.0.0.1",
            "-p",
            &dns.port.to_string(),
            "example.test",
            "AXFR",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&axfr.stdout);
    let records: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .collect();
    let soa = |line: &&str| line.split_whitespace().nth(3) == Some("SOA");
    assert!(
        records.first().is_some_and(soa) && records.last().is_some_and(soa),
        "{text}"
    );
    assert!(text.contains("192.0.2.99"), "{text}");
    // 13 records, the new one, 1 NS at the apex, 2 SOA.
    assert_eq!(records.len(), 13 + 1 + 1 + 2, "{text}");

    // A zone larger than one message: several, which knotd took whole.
    let axfr = Command::new("kdig")
        .args([
            "-b",
            KNOT,
            "@127.0.0.1",
            "-p",
            &dns.port.to_string(),
            "big.test",
            "AXFR",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&axfr.stdout);
    let summary = text
        .lines()
        .find(|l| l.starts_with(";; Received"))
        .unwrap_or_default();
    let messages: usize = summary
        .split(['(', ' '])
        .skip_while(|w| !w.is_empty() && *w != "B")
        .find_map(|w| w.parse().ok())
        .unwrap_or(0);
    assert!(messages >= 2, "{summary}");
    assert!(
        summary.contains(&format!("{} records", BIG + 2)),
        "{summary}"
    );
    let big_serial = serial(&dns.dig(&["big.test", "SOA"]));
    wait_for("knotd serving big.test", Duration::from_secs(10), || {
        (serial(&dig(KNOT, knot_port, KNOT, &["big.test", "SOA"])) == big_serial).then_some(())
    });
    let last = format!("host-{}.big.test", BIG - 1);
    let theirs = dig(KNOT, knot_port, KNOT, &[&last, "TXT"]);
    assert_eq!(essence(&theirs), essence(&dns.dig(&[&last, "TXT"])));
    assert_eq!(theirs.answer.len(), 1, "{}", theirs.text);

    // From an address the zone does not list: refused.
    let refused = dig("127.0.0.1", dns.port, UNLISTED, &["example.test", "AXFR"]);
    assert!(refused.text.contains("Transfer failed"), "{}", refused.text);
    let refused = dig(
        "127.0.0.1",
        dns.port,
        UNLISTED,
        &["+tcp", "example.test", "IXFR=1"],
    );
    assert!(refused.text.contains("Transfer failed"), "{}", refused.text);
    assert!(dns.log_text().contains("zone transfer refused"));
    assert!(
        metric(
            &dns,
            "uc_dns_transfers_total{type=\"AXFR\",answer=\"refused\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &dns,
            "uc_dns_transfers_total{type=\"IXFR\",answer=\"refused\"}"
        ) >= 1.0
    );
    let knot_log = std::fs::read_to_string(dir.join("knot.log")).unwrap();
    for line in knot_log
        .lines()
        .filter(|l| l.contains("XFR") || l.contains("NOTIFY"))
    {
        eprintln!("knotd: {line}");
    }
    assert!(knot_log.contains("IXFR, incoming"), "{knot_log}");
    assert!(!knot_log.contains("fallback to AXFR"), "{knot_log}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
