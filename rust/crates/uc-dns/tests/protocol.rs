//! uc-dns answers as Knot does, asked by real `dig` over UDP and TCP, with
//! the zones written to a real store as the deployer writes them: AA,
//! NXDOMAIN vs NODATA with the SOA and its negative TTL, CNAME chasing,
//! empty non-terminals, wildcards, referrals with glue, PTR patterns,
//! REFUSED outside its zones and for AXFR, TC over UDP and the whole answer
//! over TCP, EDNS, bad records skipped and logged, zone changes live with a
//! higher serial; then garbage on both sockets, /metrics, and one UDP
//! socket per CPU on the port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{put_zone, zone_json, Dns};
use uc_testkit::{Etcd, TestDir};

const SOA: &str = "example.test. 60 IN SOA ns1.example.test. hostmaster.example.test.";

fn example_zone(extra: &[(&str, &str, &[&str])]) -> String {
    let big: Vec<String> = (100..160).map(|i| format!("192.0.2.{i}")).collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let mut records: Vec<(&str, &str, &[&str])> = vec![
        ("@", "A", &["192.0.2.1"]),
        ("ns1", "A", &["192.0.2.53"]),
        ("www", "A", &["192.0.2.10", "192.0.2.11"]),
        ("alias", "CNAME", &["www"]),
        ("chain", "CNAME", &["alias.example.test."]),
        ("a.b.c", "A", &["192.0.2.30"]),
        ("*.w", "TXT", &["\"wild\""]),
        ("sub", "NS", &["ns.sub"]),
        ("ns.sub", "A", &["192.0.2.50"]),
        ("mail", "MX", &["10 mx"]),
        ("mx", "A", &["192.0.2.25"]),
        ("txt", "TXT", &["\"hello world\""]),
        ("caa", "CAA", &["0 issue \"ca.example\""]),
        ("_sip._tcp", "SRV", &["0 5 5060 sip"]),
        ("sip", "AAAA", &["2001:db8::5"]),
        ("bad", "A", &["not-an-address"]),
        ("both", "TXT", &["\"data\""]),
        ("both", "CNAME", &["www"]),
        ("big", "A", &big),
    ];
    records.extend_from_slice(extra);
    zone_json(&["ns1.example.test."], &records, &[])
}

fn serial(dns: &Dns) -> u64 {
    let reply = dns.dig(&["example.test", "SOA"]);
    let soa = reply.answer.first().expect("an SOA");
    soa.split(' ').nth(6).unwrap().parse().unwrap()
}

#[test]
fn answers_as_knot_does() {
    let dir = TestDir::new("uc-dns-protocol");
    let store = Etcd::start(&dir.join("store"));
    put_zone(&store, "example.test", &example_zone(&[]));
    put_zone(
        &store,
        "2.0.192.in-addr.arpa",
        &zone_json(
            &[],
            &[("10", "PTR", &["www.example.test."])],
            &[("192.0.2.0/25", "host-{a}-{b}-{c}-{d}.example.test.")],
        ),
    );
    let dns = Dns::start(&store, &dir);

    positive_answers_are_authoritative(&dns);
    nxdomain_and_nodata_carry_the_soa(&dns);
    cnames_are_chased_inside_the_zone(&dns);
    wildcards_answer_missing_names(&dns);
    delegations_refer_with_glue(&dns);
    reverse_zones_generate_ptrs(&dns);
    other_zones_and_transfers_are_refused(&dns);
    udp_truncates_and_tcp_answers_whole(&dns);
    edns_is_spoken(&dns);
    bad_records_are_skipped_and_logged(&dns);
    zone_changes_are_live_with_a_higher_serial(&dns, &store);
    garbage_does_not_stop_the_server(&dns);
    metrics_count_queries_and_show_serials(&dns);
    one_udp_socket_per_cpu(&dns);
}

fn positive_answers_are_authoritative(dns: &Dns) {
    let reply = dns.dig(&["www.example.test", "A"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert!(reply.has_flag("aa"), "{}", reply.text);
    assert!(!reply.has_flag("ra"), "{}", reply.text);
    assert_eq!(reply.answer_data(), ["192.0.2.10", "192.0.2.11"]);
    for (name, qtype, data) in [
        ("txt.example.test", "TXT", "\"hello world\""),
        ("caa.example.test", "CAA", "0 issue \"ca.example\""),
        ("sip.example.test", "AAAA", "2001:db8::5"),
        (
            "_sip._tcp.example.test",
            "SRV",
            "0 5 5060 sip.example.test.",
        ),
        ("mail.example.test", "MX", "10 mx.example.test."),
        ("example.test", "NS", "ns1.example.test."),
    ] {
        let reply = dns.dig(&[name, qtype]);
        assert_eq!(
            reply.answer_data(),
            [data],
            "{name} {qtype}: {}",
            reply.text
        );
        assert!(reply.has_flag("aa"));
    }
    // Targets in the zone come with their addresses.
    let reply = dns.dig(&["mail.example.test", "MX"]);
    assert_eq!(reply.additional, ["mx.example.test. 300 IN A 192.0.2.25"]);
}

fn nxdomain_and_nodata_carry_the_soa(dns: &Dns) {
    for (name, qtype, status) in [
        ("nope.example.test", "A", "NXDOMAIN"),
        ("www.example.test", "AAAA", "NOERROR"),
        // Empty non-terminals: names with only descendants exist.
        ("c.example.test", "A", "NOERROR"),
        ("b.c.example.test", "A", "NOERROR"),
    ] {
        let reply = dns.dig(&[name, qtype]);
        assert_eq!(reply.status, status, "{name} {qtype}: {}", reply.text);
        assert!(reply.has_flag("aa"), "{}", reply.text);
        assert!(reply.answer.is_empty(), "{}", reply.text);
        assert_eq!(reply.authority.len(), 1, "{}", reply.text);
        assert!(reply.authority[0].starts_with(SOA), "{}", reply.text);
    }
}

fn cnames_are_chased_inside_the_zone(dns: &Dns) {
    let reply = dns.dig(&["chain.example.test", "A"]);
    assert_eq!(reply.status, "NOERROR");
    assert_eq!(
        reply.answer,
        [
            "chain.example.test. 300 IN CNAME alias.example.test.",
            "alias.example.test. 300 IN CNAME www.example.test.",
            "www.example.test. 300 IN A 192.0.2.10",
            "www.example.test. 300 IN A 192.0.2.11",
        ],
        "{}",
        reply.text
    );
}

fn wildcards_answer_missing_names(dns: &Dns) {
    let reply = dns.dig(&["anything.w.example.test", "TXT"]);
    assert_eq!(
        reply.answer,
        ["anything.w.example.test. 300 IN TXT \"wild\""],
        "{}",
        reply.text
    );
    let reply = dns.dig(&["anything.w.example.test", "A"]);
    assert_eq!((reply.status.as_str(), reply.answer.len()), ("NOERROR", 0));
}

fn delegations_refer_with_glue(dns: &Dns) {
    let reply = dns.dig(&["host.sub.example.test", "A"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert!(
        !reply.has_flag("aa"),
        "a referral is not authoritative: {}",
        reply.text
    );
    assert!(reply.answer.is_empty());
    assert_eq!(
        reply.authority,
        ["sub.example.test. 300 IN NS ns.sub.example.test."]
    );
    assert_eq!(
        reply.additional,
        ["ns.sub.example.test. 300 IN A 192.0.2.50"]
    );
}

fn reverse_zones_generate_ptrs(dns: &Dns) {
    let reply = dns.dig(&["-x", "192.0.2.7"]);
    assert_eq!(
        reply.answer_data(),
        ["host-192-0-2-7.example.test."],
        "{}",
        reply.text
    );
    let reply = dns.dig(&["-x", "192.0.2.10"]);
    assert_eq!(
        reply.answer_data(),
        ["www.example.test."],
        "explicit PTRs win"
    );
    let reply = dns.dig(&["-x", "192.0.2.200"]);
    assert_eq!(reply.status, "NXDOMAIN", "outside the pattern's network");
}

fn other_zones_and_transfers_are_refused(dns: &Dns) {
    let reply = dns.dig(&["www.other.test", "A"]);
    assert_eq!(reply.status, "REFUSED", "{}", reply.text);
    assert!(!reply.has_flag("aa"));
    let output = std::process::Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &dns.port.to_string(),
            "+time=2",
            "+tries=1",
        ])
        .args(["example.test", "AXFR"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Transfer failed"), "{text}");
}

fn udp_truncates_and_tcp_answers_whole(dns: &Dns) {
    // As Knot: TC and nothing else, never a cut RRset.
    let reply = dns.dig(&["+noedns", "+ignore", "big.example.test", "A"]);
    assert!(reply.has_flag("tc"), "{}", reply.text);
    assert!(reply.answer.is_empty(), "{}", reply.text);
    assert!(!reply.text.contains("WARNING"), "{}", reply.text);
    let reply = dns.dig(&["+tcp", "big.example.test", "A"]);
    assert!(!reply.has_flag("tc"), "{}", reply.text);
    assert_eq!(reply.answer.len(), 60, "{}", reply.text);
    // Without +ignore, dig retries over TCP on TC, as resolvers do.
    assert_eq!(
        dns.dig(&["+noedns", "big.example.test", "A"]).answer.len(),
        60
    );
}

fn edns_is_spoken(dns: &Dns) {
    let reply = dns.dig(&["+bufsize=4096", "www.example.test", "A"]);
    let edns = reply.edns.clone().unwrap_or_default();
    assert!(
        edns.contains("version: 0") && edns.contains("udp: 1232"),
        "{}",
        reply.text
    );
    let reply = dns.dig(&["+edns=1", "+noednsneg", "www.example.test", "A"]);
    assert_eq!(reply.status, "BADVERS", "{}", reply.text);
}

fn bad_records_are_skipped_and_logged(dns: &Dns) {
    assert_eq!(dns.dig(&["bad.example.test", "A"]).status, "NXDOMAIN");
    let reply = dns.dig(&["both.example.test", "TXT"]);
    assert_eq!(
        reply.answer_data(),
        ["\"data\""],
        "the data beside a CNAME stays"
    );
    assert!(dns.dig(&["both.example.test", "A"]).answer.is_empty());
    let log = dns.log_text();
    let line = |needle: &str| {
        log.lines()
            .find(|line| line.contains("record skipped") && line.contains(needle))
            .unwrap_or_else(|| panic!("no log line about {needle}:\n{log}"))
            .to_owned()
    };
    let bad = line("not-an-address");
    assert!(
        bad.contains("zone=example.test") && bad.contains("bad A"),
        "{bad}"
    );
    let both = line("CNAME beside other data");
    assert!(
        both.contains("zone=example.test") && both.contains("both.example.test"),
        "{both}"
    );
}

fn zone_changes_are_live_with_a_higher_serial(dns: &Dns, store: &Etcd) {
    let before = serial(dns);
    put_zone(
        store,
        "example.test",
        &example_zone(&[("new", "A", &["192.0.2.77"])]),
    );
    let took = dns.dig_until(
        &["new.example.test", "A"],
        Duration::from_secs(1),
        |reply| reply.answer_data() == ["192.0.2.77"],
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(serial(dns) > before);
    // Rewriting the same declaration changes nothing, so the serial stays.
    let now = serial(dns);
    put_zone(
        store,
        "example.test",
        &example_zone(&[("new", "A", &["192.0.2.77"])]),
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(serial(dns), now);
}

fn garbage_does_not_stop_the_server(dns: &Dns) {
    use std::io::Write;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..2_000u32 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let length = (state % 300) as usize;
        let mut packet: Vec<u8> = (0..length).map(|i| (state >> (i % 56)) as u8).collect();
        if round % 2 == 0 && packet.len() >= 12 {
            packet[2] = 0; // a query, not a response
            packet[5] = 1; // one question
        }
        let _ = socket.send_to(&packet, ("127.0.0.1", dns.port));
    }
    for _ in 0..20 {
        if let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", dns.port)) {
            let _ = tcp.write_all(&[0, 40, 1, 2, 3, 255, 0, 1, 0, 0]);
        }
    }
    let reply = dns.dig(&["www.example.test", "A"]);
    assert_eq!(
        reply.answer_data(),
        ["192.0.2.10", "192.0.2.11"],
        "{}",
        reply.text
    );
    let reply = dns.dig(&["+tcp", "www.example.test", "A"]);
    assert_eq!(reply.answer.len(), 2);
}

fn metrics_count_queries_and_show_serials(dns: &Dns) {
    let metrics = dns.metrics();
    for needle in [
        "uc_dns_queries_total{qtype=\"A\",rcode=\"NXDOMAIN\"}",
        "uc_dns_queries_total{qtype=\"A\",rcode=\"REFUSED\"}",
        "uc_dns_query_duration_seconds_count",
        "uc_dns_zone_serial{zone=\"example.test.\"}",
        "uc_dns_zone_serial{zone=\"2.0.192.in-addr.arpa.\"}",
        "uc_dns_store_connected 1",
        "uc_dns_store_last_sync_age_seconds",
        "uc_dns_store_lag_revisions",
    ] {
        assert!(metrics.contains(needle), "no {needle} in\n{metrics}");
    }
}

/// SO_REUSEPORT: as many UDP sockets on the port as CPUs, so all answer.
fn one_udp_socket_per_cpu(dns: &Dns) {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let local = format!("0100007F:{:04X}", dns.port);
    let sockets = table
        .lines()
        .filter(|line| line.split_whitespace().nth(1) == Some(local.as_str()))
        .count();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(sockets, cpus, "{table}");
}
