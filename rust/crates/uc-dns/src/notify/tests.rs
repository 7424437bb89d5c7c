//! Which changes make a NOTIFY, and its wire form.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use hickory_server::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_server::proto::rr::RecordType;
use hickory_server::proto::serialize::binary::BinEncodable;

use super::*;
use crate::fixture;
use crate::zone::Zone;

fn zone(serial: u32, secondaries: &[&str]) -> Arc<Zone> {
    let parsed =
        crate::build::ParsedZone::parse("example.test", &fixture::example_zone(), 7).unwrap();
    let content = parsed.assemble(&fixture::web_endpoints(&[]));
    let zone = Zone::new(parsed.apex, parsed.ttl, &parsed.soa, serial, 7, content);
    Arc::new(zone.with_secondaries(secondaries.iter().map(|s| s.parse().unwrap()).collect()))
}

fn snapshot(zones: Vec<Arc<Zone>>) -> Snapshot {
    Snapshot::new(zones, 1, 1)
}

#[test]
fn a_new_serial_notifies_the_zones_secondaries() {
    let listed = ["127.0.0.2:53", "[2001:db8::53]:5300"];
    let empty = snapshot(vec![]);
    let cases: [(&str, Snapshot, Snapshot, usize); 5] = [
        ("first snapshot", empty, snapshot(vec![zone(5, &listed)]), 1),
        (
            "serial went up",
            snapshot(vec![zone(5, &listed)]),
            snapshot(vec![zone(6, &listed)]),
            1,
        ),
        (
            "same serial",
            snapshot(vec![zone(5, &listed)]),
            snapshot(vec![zone(5, &listed)]),
            0,
        ),
        (
            "no secondaries",
            snapshot(vec![zone(5, &[])]),
            snapshot(vec![zone(6, &[])]),
            0,
        ),
        (
            "zone gone",
            snapshot(vec![zone(5, &listed)]),
            snapshot(vec![]),
            0,
        ),
    ];
    for (what, previous, next, expected) in cases {
        let found = notices(&previous, &next);
        assert_eq!(found.len(), expected, "{what}");
        if let Some(notice) = found.first() {
            assert_eq!(notice.zone.to_string(), "example.test.");
            assert_eq!(notice.serial, next.zones().next().unwrap().serial);
            assert_eq!(notice.secondaries.len(), 2, "{what}");
        }
    }
}

#[test]
fn the_notify_carries_the_soa_and_only_its_answer_acknowledges_it() {
    let notice = notices(
        &snapshot(vec![]),
        &snapshot(vec![zone(9, &["127.0.0.2:53"])]),
    )
    .pop()
    .unwrap();
    let bytes = message(&notice, 77).unwrap();
    let sent = Message::from_vec(&bytes).unwrap();
    assert_eq!(sent.metadata.op_code, OpCode::Notify);
    assert_eq!(sent.metadata.message_type, MessageType::Query);
    assert!(sent.metadata.authoritative);
    assert_eq!(sent.queries[0].query_type(), RecordType::SOA);
    assert_eq!(sent.queries[0].name().to_string(), "example.test.");
    assert_eq!(sent.answers, std::slice::from_ref(&notice.soa));

    let answer = |id: u16, op_code: OpCode, rcode: ResponseCode| {
        let mut message = Message::new(id, MessageType::Response, op_code);
        message.metadata.response_code = rcode;
        message.to_bytes().unwrap()
    };
    let ack = answer(77, OpCode::Notify, ResponseCode::NoError);
    assert_eq!(acknowledgement(&ack, 77), Some(ResponseCode::NoError));
    let refused = answer(77, OpCode::Notify, ResponseCode::Refused);
    assert_eq!(acknowledgement(&refused, 77), Some(ResponseCode::Refused));
    assert_eq!(acknowledgement(&ack, 78), None, "another id");
    assert_eq!(
        acknowledgement(&answer(77, OpCode::Query, ResponseCode::NoError), 77),
        None
    );
    assert_eq!(acknowledgement(&bytes, 77), None, "our own query");
    assert_eq!(acknowledgement(b"junk", 77), None);
}
