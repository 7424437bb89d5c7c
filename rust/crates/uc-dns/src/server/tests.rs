//! The message level (opcodes, question counts, EDNS) and a bounded run of
//! random and mangled packets through parse → reply → encode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use hickory_server::proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::server::Request;

use super::{fit_udp, reply, response_edns, Reply};
use crate::fixture;
use crate::snapshot::Snapshot;

fn query_bytes(name: &str, qtype: RecordType, edns: Option<Edns>) -> Vec<u8> {
    let mut message = Message::new(4242, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message.edns = edns;
    message.to_bytes().unwrap()
}

fn request(bytes: Vec<u8>) -> Request {
    Request::from_bytes(bytes, "127.0.0.1:5300".parse().unwrap(), Protocol::Udp).unwrap()
}

/// The reply to `request` encoded as over UDP; (bytes, reply).
fn encode(snapshot: &Snapshot, request: &Request) -> (Vec<u8>, Reply) {
    let mut reply = reply(snapshot, request);
    let edns = response_edns(request, &reply);
    fit_udp(request, &mut reply, edns.as_ref());
    let response = super::reply_message(&request.queries, edns.as_ref(), &reply);
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(super::udp_limit(request));
    let info = response.destructive_emit(&mut encoder).unwrap();
    // What fit_udp left always fits: hickory never has to cut it.
    assert_eq!(info.truncation, reply.metadata.truncation);
    (bytes, reply)
}

#[test]
fn a_query_gets_its_answer_with_aa_and_the_question_echoed() {
    let snapshot = fixture::snapshot();
    let (bytes, _) = encode(
        &snapshot,
        &request(query_bytes("www.example.test.", RecordType::A, None)),
    );
    let message = Message::from_vec(&bytes).unwrap();
    assert_eq!(message.metadata.id, 4242);
    assert!(message.metadata.authoritative);
    assert!(!message.metadata.recursion_available);
    assert_eq!(message.answers.len(), 2);
    assert_eq!(message.queries[0].name().to_string(), "www.example.test.");
    assert!(message.edns.is_none(), "no OPT without one in the query");
}

#[test]
fn edns_is_answered_with_our_payload_size_and_unknown_versions_get_badvers() {
    let snapshot = fixture::snapshot();
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    let (bytes, _) = encode(
        &snapshot,
        &request(query_bytes("www.example.test.", RecordType::A, Some(edns))),
    );
    let message = Message::from_vec(&bytes).unwrap();
    assert_eq!(message.edns.as_ref().map(Edns::max_payload), Some(1232));
    let mut edns = Edns::new();
    edns.set_version(1);
    let (bytes, reply) = encode(
        &snapshot,
        &request(query_bytes("www.example.test.", RecordType::A, Some(edns))),
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::BADVERS);
    let message = Message::from_vec(&bytes).unwrap();
    // 16 on the wire (BADVERS and BADSIG share it; the decoder names the latter).
    assert_eq!(u16::from(message.metadata.response_code), 16);
    assert!(message.edns.is_some());
}

#[test]
fn notify_and_update_are_not_ours_other_opcodes_not_implemented_and_questionless_queries_malformed()
{
    let snapshot = fixture::snapshot();
    let mut notify = Message::new(1, MessageType::Query, OpCode::Notify);
    notify.add_query(Query::query(
        Name::from_ascii("example.test.").unwrap(),
        RecordType::SOA,
    ));
    let reply = reply(&snapshot, &request(notify.to_bytes().unwrap()));
    assert_eq!(reply.metadata.response_code, ResponseCode::NotAuth);
    let mut status = Message::new(1, MessageType::Query, OpCode::Status);
    status.add_query(Query::query(
        Name::from_ascii("example.test.").unwrap(),
        RecordType::SOA,
    ));
    let reply = super::reply(&snapshot, &request(status.to_bytes().unwrap()));
    assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
    let empty = Message::new(2, MessageType::Query, OpCode::Query);
    let reply = super::reply(&snapshot, &request(empty.to_bytes().unwrap()));
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(reply.qtype, None);
    let mut two = Message::new(3, MessageType::Query, OpCode::Query);
    two.add_query(Query::query(
        Name::from_ascii("www.example.test.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("mx.example.test.").unwrap(),
        RecordType::A,
    ));
    let reply = super::reply(&snapshot, &request(two.to_bytes().unwrap()));
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert!(!reply.metadata.authoritative);
}

#[test]
fn random_and_mangled_packets_never_panic_and_udp_answers_stay_small() {
    let snapshot = fixture::snapshot();
    let seeds: Vec<Vec<u8>> = [
        ("www.example.test.", RecordType::A),
        ("chain.example.test.", RecordType::A),
        ("x.wild.example.test.", RecordType::ANY),
        ("host.sub.example.test.", RecordType::A),
        ("1.2.0.192.in-addr.arpa.", RecordType::PTR),
        ("nope.example.test.", RecordType::MX),
    ]
    .iter()
    .map(|(name, qtype)| query_bytes(name, *qtype, Some(Edns::new())))
    .collect();
    let mut random = uc_testkit::Xorshift(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let (mut parsed, mut answered) = (0, 0);
    for round in 0..30_000 {
        let bytes: Vec<u8> = match round % 3 {
            // Noise of any length, with a plausible header now and then.
            0 => (0..random.below(600))
                .map(|_| random.next() as u8)
                .collect(),
            // A real query with a few bytes changed.
            1 => {
                let mut bytes = seeds[random.below(seeds.len())].clone();
                for _ in 0..=random.below(4) {
                    let at = random.below(bytes.len());
                    bytes[at] = random.next() as u8;
                }
                bytes
            }
            // A real query cut short or with garbage appended.
            _ => {
                let mut bytes = seeds[random.below(seeds.len())].clone();
                if random.below(2) == 0 {
                    bytes.truncate(random.below(bytes.len()));
                } else {
                    bytes.extend((0..random.below(64)).map(|_| random.next() as u8));
                }
                bytes
            }
        };
        let Ok(request) =
            Request::from_bytes(bytes, "127.0.0.1:5300".parse().unwrap(), Protocol::Udp)
        else {
            continue;
        };
        parsed += 1;
        let (encoded, _) = encode(&snapshot, &request);
        assert!(
            encoded.len() <= 1232,
            "round {round}: {} bytes",
            encoded.len()
        );
        answered += 1;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "too slow: round {round}"
        );
    }
    assert!(
        parsed > 1_000,
        "the corpus should reach the answer path ({parsed} parsed)"
    );
    assert_eq!(parsed, answered);
}

/// example.test with an A RRset too big for 512 bytes (`big`) and an MX
/// (`mail`) that fits 512 only without its 50 additional addresses.
pub(super) fn big_snapshot() -> Snapshot {
    let big: Vec<String> = (0..60).map(|i| format!("192.0.2.{i}")).collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let targets: Vec<String> = (0..10).map(|i| format!("10 mx{i}")).collect();
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    let mut records: Vec<(String, &str, Vec<&str>)> = vec![
        ("big".into(), "A", big.clone()),
        ("mail".into(), "MX", targets),
    ];
    for i in 0..10 {
        records.push((format!("mx{i}"), "A", big[..5].to_vec()));
    }
    let records: Vec<(&str, &str, &[&str])> = records
        .iter()
        .map(|(name, kind, values)| (name.as_str(), *kind, values.as_slice()))
        .collect();
    let spec = fixture::declared(&records, serde_json::json!({}));
    let zone = fixture::zone("example.test", &spec, &Default::default());
    Snapshot::new(vec![std::sync::Arc::new(zone)], 1, 1)
}

#[test]
fn udp_answers_that_do_not_fit_lose_additionals_first_then_everything_with_tc() {
    let snapshot = big_snapshot();

    let (bytes, reply) = encode(
        &snapshot,
        &request(query_bytes("big.example.test.", RecordType::A, None)),
    );
    assert!(reply.metadata.truncation);
    let message = Message::from_vec(&bytes).unwrap();
    assert!(message.metadata.truncation);
    assert!(message.answers.is_empty() && message.additionals.is_empty());
    assert!(bytes.len() <= 512);

    let (bytes, reply) = encode(
        &snapshot,
        &request(query_bytes("mail.example.test.", RecordType::MX, None)),
    );
    assert!(
        !reply.metadata.truncation,
        "the answer fits without its additionals"
    );
    let message = Message::from_vec(&bytes).unwrap();
    assert_eq!(message.answers.len(), 10);
    assert!(message.additionals.is_empty());

    // With EDNS' larger size the additionals fit too.
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    let (bytes, _) = encode(
        &snapshot,
        &request(query_bytes(
            "mail.example.test.",
            RecordType::MX,
            Some(edns),
        )),
    );
    let message = Message::from_vec(&bytes).unwrap();
    assert_eq!(message.additionals.len(), 50);
}

#[test]
fn refusals_say_why_and_the_do_bit_is_echoed() {
    let snapshot = fixture::snapshot();
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    let (bytes, _) = encode(
        &snapshot,
        &request(query_bytes(
            "www.other.test.",
            RecordType::A,
            Some(edns.clone()),
        )),
    );
    let message = Message::from_vec(&bytes).unwrap();
    assert_eq!(message.metadata.response_code, ResponseCode::Refused);
    let opt = message.edns.unwrap();
    assert!(opt.flags().dnssec_ok);
    let ede = opt
        .options()
        .as_ref()
        .iter()
        .find(|(code, _)| u16::from(*code) == 15);
    assert!(ede.is_some(), "{opt:?}");
    let (bytes, _) = encode(
        &snapshot,
        &request(query_bytes("www.example.test.", RecordType::A, Some(edns))),
    );
    let opt = Message::from_vec(&bytes).unwrap().edns.unwrap();
    assert!(opt.options().as_ref().is_empty());
}
