//! Table tests of the protocol rules, one zone fixture (`crate::fixture`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{DNSClass, Name, Record, RecordType};

use super::{answer, Answer, Question};
use crate::fixture;

fn ask(name: &str, qtype: RecordType) -> Answer {
    let snapshot = fixture::snapshot();
    answer(
        &snapshot,
        &Question::new(Name::from_ascii(name).unwrap(), qtype),
    )
}

/// `owner TTL TYPE data`, one per record.
fn lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

#[test]
fn positive_answers_are_authoritative() {
    let reply = ask("www.example.test.", RecordType::A);
    assert_eq!(reply.rcode, ResponseCode::NoError);
    assert!(reply.authoritative);
    assert_eq!(
        lines(&reply.answers),
        [
            "www.example.test. 300 A 192.0.2.10",
            "www.example.test. 300 A 192.0.2.11"
        ]
    );
    assert!(reply.authority.is_empty());
}

#[test]
fn names_match_whatever_their_case() {
    let reply = ask("WWW.Example.TEST.", RecordType::A);
    assert_eq!(reply.answers.len(), 2);
    assert_eq!(
        reply.answers[0].name.to_string(),
        "WWW.Example.TEST.",
        "spelled as asked"
    );
}

#[test]
fn nodata_and_nxdomain_carry_the_soa_with_the_negative_ttl() {
    // (name, type, rcode)
    let table = [
        ("www.example.test.", RecordType::AAAA, ResponseCode::NoError),
        ("nope.example.test.", RecordType::A, ResponseCode::NXDomain),
        (
            "deep.nope.example.test.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        // Empty non-terminals exist: NODATA, not NXDOMAIN.
        ("c.example.test.", RecordType::A, ResponseCode::NoError),
        ("b.c.example.test.", RecordType::TXT, ResponseCode::NoError),
        ("_tcp.example.test.", RecordType::SRV, ResponseCode::NoError),
        // The wildcard exists but holds no A.
        (
            "anything.w.example.test.",
            RecordType::A,
            ResponseCode::NoError,
        ),
        // Only the closest encloser's wildcard applies (here there is none).
        ("z.c.example.test.", RecordType::TXT, ResponseCode::NXDomain),
        // A skipped record leaves no name behind.
        ("bad.example.test.", RecordType::A, ResponseCode::NXDomain),
    ];
    for (name, qtype, rcode) in table {
        let reply = ask(name, qtype);
        assert_eq!(reply.rcode, rcode, "{name} {qtype}");
        assert!(reply.authoritative, "{name} {qtype}");
        assert!(
            reply.answers.is_empty(),
            "{name} {qtype}: {:?}",
            reply.answers
        );
        assert_eq!(
            lines(&reply.authority),
            ["example.test. 60 SOA ns1.example.test. hostmaster.example.test. 2024 3600 600 604800 60"],
            "{name} {qtype}"
        );
    }
}

#[test]
fn cnames_are_chased_inside_the_zone() {
    let reply = ask("chain.example.test.", RecordType::A);
    assert_eq!(
        lines(&reply.answers),
        [
            "chain.example.test. 300 CNAME alias.example.test.",
            "alias.example.test. 300 CNAME www.example.test.",
            "www.example.test. 300 A 192.0.2.10",
            "www.example.test. 300 A 192.0.2.11",
        ]
    );
    assert_eq!(reply.rcode, ResponseCode::NoError);
    // Asking for the CNAME itself does not chase.
    let reply = ask("alias.example.test.", RecordType::CNAME);
    assert_eq!(
        lines(&reply.answers),
        ["alias.example.test. 300 CNAME www.example.test."]
    );
}

#[test]
fn a_chain_ends_where_the_zone_or_the_data_does() {
    let reply = ask("external.example.test.", RecordType::A);
    assert_eq!(reply.rcode, ResponseCode::NoError);
    assert_eq!(
        lines(&reply.answers),
        ["external.example.test. 300 CNAME host.elsewhere.test."]
    );
    assert!(reply.authority.is_empty());
    // The last name decides the code (RFC 6604).
    let reply = ask("dangling.example.test.", RecordType::A);
    assert_eq!(reply.rcode, ResponseCode::NXDomain);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.authority.len(), 1);
    let reply = ask("alias.example.test.", RecordType::MX);
    assert_eq!(reply.rcode, ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.authority[0].record_type(), RecordType::SOA);
}

#[test]
fn cname_loops_end() {
    let reply = ask("loop1.example.test.", RecordType::A);
    assert_eq!(reply.rcode, ResponseCode::NoError);
    assert_eq!(
        lines(&reply.answers),
        [
            "loop1.example.test. 300 CNAME loop2.example.test.",
            "loop2.example.test. 300 CNAME loop1.example.test.",
        ]
    );
}

#[test]
fn wildcards_answer_for_missing_names_with_the_asked_owner() {
    let reply = ask("Random.w.example.test.", RecordType::TXT);
    assert_eq!(
        lines(&reply.answers),
        ["Random.w.example.test. 300 TXT wild"]
    );
    // A wildcard covers any number of labels.
    let reply = ask("a.b.w.example.test.", RecordType::TXT);
    assert_eq!(lines(&reply.answers), ["a.b.w.example.test. 300 TXT wild"]);
    let reply = ask("x.wild.example.test.", RecordType::A);
    assert_eq!(
        lines(&reply.answers),
        ["x.wild.example.test. 300 A 192.0.2.40"]
    );
    // An existing name is never answered from the wildcard.
    let reply = ask("www.example.test.", RecordType::TXT);
    assert!(reply.answers.is_empty());
}

#[test]
fn delegations_refer_with_glue_and_without_aa() {
    for (name, qtype) in [
        ("host.sub.example.test.", RecordType::A),
        ("sub.example.test.", RecordType::NS),
        ("sub.example.test.", RecordType::A),
    ] {
        let reply = ask(name, qtype);
        assert_eq!(reply.rcode, ResponseCode::NoError, "{name}");
        assert!(!reply.authoritative, "{name}");
        assert!(reply.answers.is_empty(), "{name}");
        assert_eq!(
            lines(&reply.authority),
            ["sub.example.test. 300 NS ns.sub.example.test."]
        );
        assert_eq!(
            lines(&reply.additional),
            ["ns.sub.example.test. 300 A 192.0.2.50"]
        );
    }
}

#[test]
fn targets_of_mx_srv_and_ns_come_with_their_addresses() {
    let reply = ask("mail.example.test.", RecordType::MX);
    assert_eq!(
        lines(&reply.additional),
        ["mx.example.test. 300 A 192.0.2.25"]
    );
    let reply = ask("_sip._tcp.example.test.", RecordType::SRV);
    assert_eq!(
        lines(&reply.additional),
        ["sip.example.test. 300 AAAA 2001:db8::5"]
    );
    let reply = ask("example.test.", RecordType::NS);
    assert!(reply.authoritative);
    assert_eq!(
        lines(&reply.answers),
        ["example.test. 300 NS ns1.example.test."]
    );
    assert_eq!(
        lines(&reply.additional),
        ["ns1.example.test. 300 A 192.0.2.53"]
    );
}

#[test]
fn every_declared_type_is_served() {
    let table = [
        ("example.test.", RecordType::SOA, "SOA"),
        ("txt.example.test.", RecordType::TXT, "TXT hello world"),
        (
            "caa.example.test.",
            RecordType::CAA,
            "CAA 0 issue \"ca.example\"",
        ),
        ("sip.example.test.", RecordType::AAAA, "AAAA 2001:db8::5"),
        (
            "mail.example.test.",
            RecordType::MX,
            "MX 10 mx.example.test.",
        ),
        (
            "10.2.0.192.in-addr.arpa.",
            RecordType::PTR,
            "PTR www.example.test.",
        ),
    ];
    for (name, qtype, expected) in table {
        let reply = ask(name, qtype);
        let got = lines(&reply.answers).join("\n");
        assert!(got.contains(expected), "{name} {qtype}: {got}");
        assert!(reply.authoritative);
    }
}

#[test]
fn any_returns_one_rrset_the_lowest_type_as_knot_does() {
    let reply = ask("example.test.", RecordType::ANY);
    assert_eq!(lines(&reply.answers), ["example.test. 300 A 192.0.2.1"]);
    let reply = ask("sip.example.test.", RecordType::ANY);
    assert_eq!(
        lines(&reply.answers),
        ["sip.example.test. 300 AAAA 2001:db8::5"]
    );
    let reply = ask("c.example.test.", RecordType::ANY);
    assert!(reply.answers.is_empty());
    assert_eq!(reply.authority.len(), 1);
}

#[test]
fn a_cname_beside_other_data_is_skipped_and_the_data_stays() {
    let reply = ask("both.example.test.", RecordType::TXT);
    assert_eq!(lines(&reply.answers), ["both.example.test. 300 TXT data"]);
    let reply = ask("both.example.test.", RecordType::A);
    assert!(reply.answers.is_empty(), "{:?}", reply.answers);
    let parsed =
        crate::build::ParsedZone::parse("example.test", &fixture::example_zone(), 1).unwrap();
    let skipped: Vec<String> = parsed
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.record, s.reason))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].starts_with("records[20] bad A:"), "{skipped:?}");
    assert!(skipped[0].contains("not-an-address"), "{skipped:?}");
    assert!(
        skipped[1].contains("CNAME beside other data (TXT)"),
        "{skipped:?}"
    );
}

#[test]
fn service_records_answer_healthy_nodes_and_srv_for_named_ports() {
    let reply = ask("web.example.test.", RecordType::A);
    assert_eq!(
        lines(&reply.answers),
        [
            "web.example.test. 30 A 10.0.0.1",
            "web.example.test. 30 A 10.0.0.2"
        ]
    );
    let reply = ask("_http._tcp.web.example.test.", RecordType::SRV);
    assert_eq!(
        lines(&reply.answers),
        ["_http._tcp.web.example.test. 30 SRV 0 0 8080 web.example.test."]
    );
    assert_eq!(reply.additional.len(), 2);
    // No healthy instance: the name stays (NODATA), no SRV either.
    let endpoints = fixture::web_endpoints(&[]);
    let zone = fixture::zone("example.test", &fixture::example_zone(), &endpoints);
    let snapshot = crate::snapshot::Snapshot::new(vec![std::sync::Arc::new(zone)], 1, 1);
    for (name, qtype, rcode) in [
        ("web.example.test.", RecordType::A, ResponseCode::NoError),
        (
            "_http._tcp.web.example.test.",
            RecordType::SRV,
            ResponseCode::NXDomain,
        ),
    ] {
        let reply = answer(
            &snapshot,
            &Question::new(Name::from_ascii(name).unwrap(), qtype),
        );
        assert_eq!(reply.rcode, rcode, "{name}");
        assert!(reply.answers.is_empty(), "{name}");
    }
}

#[test]
fn reverse_zones_generate_ptrs_and_explicit_ones_win() {
    let table = [
        (
            "1.2.0.192.in-addr.arpa.",
            RecordType::PTR,
            ResponseCode::NoError,
            Some("host-192-0-2-1.example.test."),
        ),
        (
            "10.2.0.192.in-addr.arpa.",
            RecordType::PTR,
            ResponseCode::NoError,
            Some("www.example.test."),
        ),
        (
            "1.2.0.192.in-addr.arpa.",
            RecordType::A,
            ResponseCode::NoError,
            None,
        ),
        // Outside the pattern's /25.
        (
            "200.2.0.192.in-addr.arpa.",
            RecordType::PTR,
            ResponseCode::NXDomain,
            None,
        ),
        (
            "01.2.0.192.in-addr.arpa.",
            RecordType::PTR,
            ResponseCode::NXDomain,
            None,
        ),
    ];
    for (name, qtype, rcode, target) in table {
        let reply = ask(name, qtype);
        assert_eq!(reply.rcode, rcode, "{name}");
        assert!(reply.authoritative);
        let got: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(
            got,
            target.into_iter().map(str::to_owned).collect::<Vec<_>>(),
            "{name}"
        );
    }
}

#[test]
fn outside_the_served_zones_and_transfers_are_refused() {
    for (name, qtype) in [
        ("www.other.test.", RecordType::A),
        ("test.", RecordType::SOA),
        (".", RecordType::NS),
        ("example.test.", RecordType::AXFR),
        ("example.test.", RecordType::IXFR),
    ] {
        let reply = ask(name, qtype);
        assert_eq!(reply.rcode, ResponseCode::Refused, "{name} {qtype}");
        assert!(!reply.authoritative);
        assert!(reply.answers.is_empty() && reply.authority.is_empty());
    }
    let snapshot = fixture::snapshot();
    let mut question = Question::new(
        Name::from_ascii("www.example.test.").unwrap(),
        RecordType::A,
    );
    question.qclass = DNSClass::CH;
    assert_eq!(answer(&snapshot, &question).rcode, ResponseCode::Refused);
}

#[test]
fn ipv6_patterns_answer_and_foreign_placeholders_are_skipped() {
    let spec = fixture::declared(
        &[],
        serde_json::json!({"ptrPatterns": [
            {"network": "2001:db8::/64", "pattern": "host-{a}.example.test."},
            {"network": "2001:db8::/64", "pattern": "h-{hex}.example.test"},
            {"network": "192.0.2.0/24", "pattern": "host-{ip}.example.test."},
        ]}),
    );
    let apex = "8.b.d.0.1.0.0.2.ip6.arpa";
    let parsed = crate::build::ParsedZone::parse(apex, &spec, 7).unwrap();
    let skipped: Vec<&str> = parsed.skipped.iter().map(|s| s.record.as_str()).collect();
    assert_eq!(skipped, ["ptrPatterns[0]", "ptrPatterns[2]"]);
    assert!(
        parsed.skipped[0].reason.contains("{a}"),
        "{:?}",
        parsed.skipped
    );
    let zone = fixture::zone(apex, &spec, &fixture::web_endpoints(&[]));
    let snapshot = crate::snapshot::Snapshot::new(vec![std::sync::Arc::new(zone)], 1, 1);
    let address = format!("5.{}.{apex}.", ["0"; 23].join("."));
    let reply = answer(
        &snapshot,
        &Question::new(Name::from_ascii(&address).unwrap(), RecordType::PTR),
    );
    let got: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(got, ["h-20010db8000000000000000000000005.example.test."]);
    for (name, rcode) in [
        (format!("0.0.0.0.{apex}."), ResponseCode::NoError),
        (format!("1.0.0.0.{apex}."), ResponseCode::NXDomain),
        (format!("x.{address}"), ResponseCode::NXDomain),
    ] {
        let question = Question::new(Name::from_ascii(&name).unwrap(), RecordType::PTR);
        let reply = answer(&snapshot, &question);
        assert_eq!(reply.rcode, rcode, "{name}");
        assert!(reply.answers.is_empty(), "{name}");
    }
}
