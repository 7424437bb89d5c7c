//! Test zones, shared by the unit tests of `answer` and `server`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::build::{NamedPort, ParsedZone, ServiceEndpoints};
use crate::snapshot::Snapshot;
use crate::zone::Zone;

/// A zone declaration as the manifest renders it: `records` as
/// `(name, type, values)`, TTL 300, SOA minimum 60.
pub fn declared(records: &[(&str, &str, &[&str])], extra: Value) -> uc_types::Zone {
    let records: Vec<Value> = records
        .iter()
        .map(|(name, kind, values)| {
            json!({"name": name, "type": kind, "ttl": 300, "values": values, "service": null})
        })
        .collect();
    let mut zone = json!({
        "ttl": 300,
        "soa": {"email": "hostmaster.example.test", "refresh": 3600, "retry": 600, "expire": 604800, "minimum": 60},
        "nameservers": [],
        "records": records,
        "ptrPatterns": [],
    });
    if let (Some(zone), Some(extra)) = (zone.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            if key == "records" {
                let list = zone["records"].as_array_mut().unwrap();
                list.extend(value.as_array().unwrap().iter().cloned());
            } else {
                zone.insert(key.clone(), value.clone());
            }
        }
    }
    serde_json::from_value(zone).unwrap()
}

pub fn example_zone() -> uc_types::Zone {
    declared(
        &[
            ("@", "A", &["192.0.2.1"]),
            ("ns1", "A", &["192.0.2.53"]),
            ("www", "A", &["192.0.2.10", "192.0.2.11"]),
            ("alias", "CNAME", &["www"]),
            ("chain", "CNAME", &["alias.example.test."]),
            ("external", "CNAME", &["host.elsewhere.test."]),
            ("dangling", "CNAME", &["nothing"]),
            ("loop1", "CNAME", &["loop2"]),
            ("loop2", "CNAME", &["loop1"]),
            ("mail", "MX", &["10 mx"]),
            ("mx", "A", &["192.0.2.25"]),
            ("txt", "TXT", &["\"hello world\""]),
            ("_sip._tcp", "SRV", &["0 5 5060 sip"]),
            ("sip", "AAAA", &["2001:db8::5"]),
            ("a.b.c", "A", &["192.0.2.30"]),
            ("*.w", "TXT", &["\"wild\""]),
            ("*.wild", "A", &["192.0.2.40"]),
            ("sub", "NS", &["ns.sub"]),
            ("ns.sub", "A", &["192.0.2.50"]),
            ("caa", "CAA", &["0 issue \"ca.example\""]),
            ("bad", "A", &["not-an-address"]),
            ("both", "TXT", &["\"data\""]),
            ("both", "CNAME", &["www"]),
        ],
        json!({
            "nameservers": ["ns1.example.test."],
            "records": [{"name": "web", "type": "A", "ttl": 30, "values": [], "service": "web"}],
        }),
    )
}

pub fn reverse_zone() -> uc_types::Zone {
    declared(
        &[("10", "PTR", &["www.example.test."])],
        json!({"ptrPatterns": [{"network": "192.0.2.0/25", "pattern": "host-{a}-{b}-{c}-{d}.example.test."}]}),
    )
}

/// Where `web` runs in the fixtures: two nodes, port http/tcp 8080.
pub fn web_endpoints(addresses: &[&str]) -> BTreeMap<String, ServiceEndpoints> {
    let endpoints = ServiceEndpoints {
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        ports: vec![NamedPort {
            name: "http".into(),
            protocol: uc_types::Transport::Tcp,
            port: 8080,
        }],
    };
    BTreeMap::from([("web".to_owned(), endpoints)])
}

pub fn zone(
    apex: &str,
    spec: &uc_types::Zone,
    endpoints: &BTreeMap<String, ServiceEndpoints>,
) -> Zone {
    let parsed = ParsedZone::parse(apex, spec, 7).unwrap();
    let content = parsed.assemble(endpoints);
    Zone::new(
        parsed.apex.clone(),
        parsed.ttl,
        &parsed.soa,
        2024,
        7,
        content,
    )
}

/// example.test (web healthy on two nodes) and 2.0.192.in-addr.arpa.
pub fn snapshot() -> Snapshot {
    let endpoints = web_endpoints(&["10.0.0.1", "10.0.0.2"]);
    Snapshot::new(
        vec![
            Arc::new(zone("example.test", &example_zone(), &endpoints)),
            Arc::new(zone("2.0.192.in-addr.arpa", &reverse_zone(), &endpoints)),
        ],
        42,
        1,
    )
}
