//! Transfers as a secondary sees them: who may, what AXFR and IXFR carry,
//! and how a large zone is cut into messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::rdata::SOA;
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncodable;
use hickory_server::server::Request;
use serde_json::json;

use super::*;
use crate::build::ParsedZone;
use crate::fixture;

const LISTED: &str = "127.0.0.2";

fn version(spec: &uc_types::Zone, serial: u32) -> Arc<Zone> {
    let parsed = ParsedZone::parse("example.test", spec, 7).unwrap();
    let content = parsed.assemble(&fixture::web_endpoints(&["10.0.0.1"]));
    let zone = Zone::new(parsed.apex, parsed.ttl, &parsed.soa, serial, 7, content);
    Arc::new(zone.with_secondaries(vec![format!("{LISTED}:53").parse().unwrap()]))
}

fn changed() -> uc_types::Zone {
    let mut spec = fixture::example_zone();
    spec.records.retain(|r| r.name != "txt");
    spec.records.push(
        serde_json::from_value(json!({"name": "new", "type": "A", "ttl": 300, "values": ["192.0.2.99"], "service": null})).unwrap(),
    );
    spec
}

/// Serial 10 was the fixture zone; 20 is current, without `txt`, with `new`.
fn snapshot() -> Snapshot {
    let old = version(&fixture::example_zone(), 10);
    let apex = LowerName::new(&old.apex);
    Snapshot::new(vec![version(&changed(), 20)], 5, 2)
        .with_history(HashMap::from([(apex, vec![old])]))
}

fn request(qtype: RecordType, name: &str, serial: Option<u32>, protocol: Protocol) -> Request {
    let mut message = Message::new(7, MessageType::Query, OpCode::Query);
    let name = Name::from_ascii(name).unwrap();
    message.add_query(Query::query(name.clone(), qtype));
    if let Some(serial) = serial {
        let soa = SOA::new(name.clone(), name.clone(), serial, 0, 0, 0, 0);
        message.add_authority(Record::from_rdata(name, 0, RData::SOA(soa)));
    }
    Request::from_bytes(
        message.to_bytes().unwrap(),
        "127.0.0.2:4000".parse().unwrap(),
        protocol,
    )
    .unwrap()
}

fn ask(
    qtype: RecordType,
    serial: Option<u32>,
    client: &str,
    protocol: Protocol,
) -> Option<Transfer> {
    let request = request(qtype, "example.test.", serial, protocol);
    transfer(
        &snapshot(),
        &request,
        client.parse::<IpAddr>().unwrap(),
        protocol,
    )
}

fn soa_serial(record: &Record) -> u32 {
    match &record.data {
        RData::SOA(soa) => soa.serial,
        other => panic!("not a SOA: {other:?}"),
    }
}

fn shown(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect()
}

#[test]
fn only_listed_addresses_may_transfer() {
    let tcp = Protocol::Tcp;
    assert_eq!(
        ask(RecordType::AXFR, None, "127.0.0.3", tcp),
        Some(Transfer::Refused)
    );
    assert_eq!(
        ask(RecordType::IXFR, Some(10), "127.0.0.1", tcp),
        Some(Transfer::Refused)
    );
    assert!(matches!(
        ask(RecordType::AXFR, None, LISTED, tcp),
        Some(Transfer::Full(_))
    ));
    assert!(matches!(
        ask(RecordType::AXFR, None, "::ffff:127.0.0.2", tcp),
        Some(Transfer::Full(_))
    ));
}

#[test]
fn what_is_no_transfer_of_a_served_apex_is_answered_as_a_query() {
    let snapshot = snapshot();
    let client: IpAddr = LISTED.parse().unwrap();
    for (qtype, name, protocol) in [
        (RecordType::AXFR, "example.test.", Protocol::Udp),
        (RecordType::AXFR, "www.example.test.", Protocol::Tcp),
        (RecordType::AXFR, "other.test.", Protocol::Tcp),
        (RecordType::SOA, "example.test.", Protocol::Tcp),
    ] {
        let request = request(qtype, name, None, protocol);
        assert_eq!(
            transfer(&snapshot, &request, client, protocol),
            None,
            "{qtype} {name}"
        );
    }
}

#[test]
fn axfr_is_the_soa_every_record_and_the_soa() {
    let Some(Transfer::Full(records)) = ask(RecordType::AXFR, None, LISTED, Protocol::Tcp) else {
        panic!("no full transfer");
    };
    let zone = version(&changed(), 20);
    assert_eq!(records.len(), zone.record_count() + 1);
    assert_eq!(soa_serial(&records[0]), 20);
    assert_eq!(soa_serial(records.last().unwrap()), 20);
    let soas = records
        .iter()
        .filter(|r| r.record_type() == RecordType::SOA)
        .count();
    assert_eq!(soas, 2);
    let shown = shown(&records);
    assert!(shown.contains(&"new.example.test. 192.0.2.99".to_owned()));
    assert!(
        shown.contains(&"web.example.test. 10.0.0.1".to_owned()),
        "service records as resolved now"
    );
}

#[test]
fn ixfr_answers_by_the_client_serial() {
    let tcp = Protocol::Tcp;
    // A kept version: one difference, SOA 20, SOA 10, gone, SOA 20, new, SOA 20.
    let Some(Transfer::Incremental(records)) = ask(RecordType::IXFR, Some(10), LISTED, tcp) else {
        panic!("no incremental transfer");
    };
    let serials: Vec<u32> = records
        .iter()
        .filter(|r| r.record_type() == RecordType::SOA)
        .map(soa_serial)
        .collect();
    assert_eq!(serials, [20, 10, 20, 20]);
    assert_eq!(
        shown(&records[2..records.len() - 1])
            .into_iter()
            .filter(|r| !r.contains("hostmaster"))
            .collect::<Vec<_>>(),
        [
            "txt.example.test. hello world",
            "new.example.test. 192.0.2.99"
        ]
    );
    // Unknown or too old: the whole zone.
    assert!(matches!(
        ask(RecordType::IXFR, Some(3), LISTED, tcp),
        Some(Transfer::Full(_))
    ));
    assert!(matches!(
        ask(RecordType::IXFR, None, LISTED, tcp),
        Some(Transfer::Full(_))
    ));
    // Current, or newer than ours: the SOA alone.
    for serial in [20, 21] {
        let answer = ask(RecordType::IXFR, Some(serial), LISTED, tcp).unwrap();
        assert_eq!(answer.label(), "current", "serial {serial}");
        assert_eq!(soa_serial(&answer.records()[0]), 20);
    }
    // Over UDP: the SOA, and the client comes back over TCP.
    let answer = ask(RecordType::IXFR, Some(10), LISTED, Protocol::Udp).unwrap();
    assert_eq!(answer.label(), "current");
}

#[test]
fn a_large_transfer_is_cut_into_messages_that_fit() {
    let records: Vec<Record> = (0..5000)
        .map(|i| {
            let name = Name::from_ascii(format!("host-{i}.example.test.")).unwrap();
            Record::from_rdata(
                name,
                300,
                RData::A(std::net::Ipv4Addr::new(192, 0, 2, (i % 250) as u8).into()),
            )
        })
        .collect();
    let chunks = messages(&records, 4096);
    assert!(chunks.len() > 10);
    for chunk in &chunks {
        let size: usize = chunk.iter().map(|r| r.to_bytes().unwrap().len()).sum();
        assert!(size <= 4096, "{size}");
    }
    let joined: Vec<Record> = chunks.concat();
    assert_eq!(joined, records);
    assert_eq!(messages(&records[..3], MESSAGE_BYTES).len(), 1);
    assert!(messages(&[], MESSAGE_BYTES).is_empty());
}
