//! The UDP workers' path: the packet cache answers exactly what the full
//! path answers, follows every new snapshot at once, echoes the asker's
//! spelling, keys on what changes an answer (EDNS, DO, payload size) and
//! stays within its bound; unusual packets bypass it; and real datagrams
//! through `serve` are answered and counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::opt::EdnsOption;
use hickory_server::proto::rr::{Name, RData, RecordType};
use hickory_server::proto::serialize::binary::BinEncodable;

use super::{full_answer, UdpWorker};
use crate::fixture;
use crate::metrics::{CacheLookup, Metrics};
use crate::snapshot::{Published, Snapshot};

fn client() -> SocketAddr {
    "127.0.0.1:5300".parse().unwrap()
}

fn query(id: u16, name: &str, qtype: RecordType, edns: Option<Edns>) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message.metadata.recursion_desired = true;
    message.edns = edns;
    message.to_bytes().unwrap()
}

fn edns(payload: u16, dnssec_ok: bool) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    edns.set_dnssec_ok(dnssec_ok);
    edns
}

fn worker_on(snapshot: Snapshot, cache_bytes: usize) -> (UdpWorker, Arc<Published>) {
    let published = Arc::new(Published::default());
    published.store(Arc::new(snapshot));
    let worker = UdpWorker::new(published.clone(), Arc::new(Metrics::new()), cache_bytes);
    (worker, published)
}

/// (response bytes, how the cache met it).
fn ask(worker: &mut UdpWorker, packet: &[u8]) -> (Vec<u8>, CacheLookup) {
    let answered = worker.answer(packet, client()).expect("answered");
    (worker.out.clone(), answered.lookup)
}

fn uncached(snapshot: &Snapshot, packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    full_answer(
        snapshot,
        packet.to_vec(),
        client(),
        &Metrics::new(),
        &mut out,
    )
    .unwrap();
    out
}

#[test]
fn cached_answers_are_byte_for_byte_the_full_paths() {
    let questions = [
        ("www.example.test.", RecordType::A),
        ("chain.example.test.", RecordType::A),
        ("mail.example.test.", RecordType::MX),
        ("_sip._tcp.example.test.", RecordType::SRV),
        ("x.wild.example.test.", RecordType::A),
        ("anything.w.example.test.", RecordType::TXT),
        ("host.sub.example.test.", RecordType::A),
        ("nope.example.test.", RecordType::A),
        ("example.test.", RecordType::ANY),
        ("10.2.0.192.in-addr.arpa.", RecordType::PTR),
        ("20.2.0.192.in-addr.arpa.", RecordType::PTR),
        ("www.other.test.", RecordType::A),
    ];
    let options = [None, Some(edns(1232, false)), Some(edns(4096, true))];
    let (mut worker, published) = worker_on(fixture::snapshot(), 1 << 20);
    let snapshot = published.load();
    for (name, qtype) in questions {
        for edns in &options {
            let first = query(7, name, qtype, edns.clone());
            let (bytes, lookup) = ask(&mut worker, &first);
            assert_eq!(lookup, CacheLookup::Miss, "{name} {qtype}");
            assert_eq!(
                bytes,
                uncached(&snapshot, &first),
                "{name} {qtype} {edns:?}"
            );
            let again = query(4242, name, qtype, edns.clone());
            let (bytes, lookup) = ask(&mut worker, &again);
            assert_eq!(lookup, CacheLookup::Hit, "{name} {qtype}");
            assert_eq!(
                bytes,
                uncached(&snapshot, &again),
                "{name} {qtype} {edns:?}"
            );
            assert_eq!(Message::from_vec(&bytes).unwrap().metadata.id, 4242);
        }
    }
}

#[test]
fn a_new_snapshot_is_answered_at_once() {
    let endpoints = fixture::web_endpoints(&["10.0.0.1"]);
    let zone = fixture::zone("example.test", &fixture::example_zone(), &endpoints);
    let (mut worker, published) = worker_on(Snapshot::new(vec![Arc::new(zone)], 1, 1), 1 << 20);
    let packet = query(1, "web.example.test.", RecordType::A, None);
    let addresses = |bytes: &[u8]| -> Vec<String> {
        let message = Message::from_vec(bytes).unwrap();
        message.answers.iter().map(|r| r.data.to_string()).collect()
    };
    ask(&mut worker, &packet);
    let (bytes, lookup) = ask(&mut worker, &packet);
    assert_eq!(lookup, CacheLookup::Hit);
    assert_eq!(addresses(&bytes), ["10.0.0.1"]);

    let endpoints = fixture::web_endpoints(&["10.0.0.2"]);
    let zone = fixture::zone("example.test", &fixture::example_zone(), &endpoints);
    published.store(Arc::new(Snapshot::new(vec![Arc::new(zone)], 2, 2)));
    let (bytes, lookup) = ask(&mut worker, &packet);
    assert_eq!(lookup, CacheLookup::Miss, "the cache is emptied");
    assert_eq!(addresses(&bytes), ["10.0.0.2"]);

    // Without a new snapshot, the cache is emptied after an hour.
    let later = std::time::Instant::now() + Duration::from_secs(3601);
    let answered = worker.answer_at(&packet, client(), later).unwrap();
    assert_eq!(answered.lookup, CacheLookup::Miss, "emptied after an hour");
    let answered = worker.answer_at(&packet, client(), later).unwrap();
    assert_eq!(answered.lookup, CacheLookup::Hit);

    // A zone no longer served is refused at once too.
    published.store(Arc::new(Snapshot::default()));
    let (bytes, _) = ask(&mut worker, &packet);
    let message = Message::from_vec(&bytes).unwrap();
    assert_eq!(message.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn the_askers_spelling_of_the_name_is_echoed_from_the_cache() {
    let (mut worker, _) = worker_on(fixture::snapshot(), 1 << 20);
    for name in [
        "www.example.test.",
        "WwW.ExAmPlE.tEsT.",
        "WWW.EXAMPLE.TEST.",
    ] {
        let (bytes, _) = ask(&mut worker, &query(9, name, RecordType::A, None));
        let message = Message::from_vec(&bytes).unwrap();
        assert_eq!(message.queries[0].name().to_string(), name);
        assert_eq!(message.answers.len(), 2);
        for record in &message.answers {
            assert_eq!(record.name.to_string(), name, "answers spelled as asked");
        }
    }
    // A synthesised wildcard answer and a CNAME chain, asked in mixed case.
    let (mut worker, _) = worker_on(fixture::snapshot(), 1 << 20);
    for round in 0..2 {
        let (bytes, lookup) = ask(
            &mut worker,
            &query(round, "X.Wild.Example.TEST.", RecordType::A, None),
        );
        assert_eq!(lookup == CacheLookup::Hit, round == 1);
        let message = Message::from_vec(&bytes).unwrap();
        assert_eq!(message.answers[0].name.to_string(), "X.Wild.Example.TEST.");
        let (bytes, _) = ask(
            &mut worker,
            &query(round, "Chain.EXAMPLE.test.", RecordType::A, None),
        );
        let message = Message::from_vec(&bytes).unwrap();
        let owners: Vec<String> = message.answers.iter().map(|r| r.name.to_string()).collect();
        assert_eq!(owners[0], "Chain.EXAMPLE.test.");
        // Compressed against the asked name, so its suffix reads as asked
        // (the same name: DNS names are case-insensitive).
        assert!(
            owners[1].eq_ignore_ascii_case("alias.example.test."),
            "{owners:?}"
        );
    }
}

#[test]
fn truncation_and_edns_sizes_are_as_on_the_full_path_and_part_of_the_key() {
    let (mut worker, published) = worker_on(crate::server::tests::big_snapshot(), 1 << 20);
    let snapshot = published.load();
    let cases = [
        // (name, type, EDNS, TC expected, additionals expected)
        ("big.example.test.", RecordType::A, None, true, 0),
        (
            "big.example.test.",
            RecordType::A,
            Some(edns(1232, false)),
            false,
            0,
        ),
        ("mail.example.test.", RecordType::MX, None, false, 0),
        (
            "mail.example.test.",
            RecordType::MX,
            Some(edns(512, false)),
            false,
            0,
        ),
        (
            "mail.example.test.",
            RecordType::MX,
            Some(edns(4096, false)),
            false,
            50,
        ),
        (
            "mail.example.test.",
            RecordType::MX,
            Some(edns(100, true)),
            false,
            0,
        ),
        (
            "mail.example.test.",
            RecordType::MX,
            Some(edns(1232, true)),
            false,
            50,
        ),
    ];
    // Twice through: the second round is answered from the cache, which
    // must not hand one size's answer to another.
    for round in 0..2 {
        for (name, qtype, edns, truncated, additionals) in cases.clone() {
            let packet = query(3, name, qtype, edns.clone());
            let (bytes, lookup) = ask(&mut worker, &packet);
            assert_eq!(lookup == CacheLookup::Hit, round == 1, "{name} {edns:?}");
            assert_eq!(bytes, uncached(&snapshot, &packet), "{name} {edns:?}");
            let message = Message::from_vec(&bytes).unwrap();
            assert_eq!(message.metadata.truncation, truncated, "{name} {edns:?}");
            // (The OPT record is not among the decoded additionals.)
            assert_eq!(message.additionals.len(), additionals, "{name} {edns:?}");
            let limit = edns
                .as_ref()
                .map_or(512, |e| e.max_payload().clamp(512, 1232));
            assert!(bytes.len() <= usize::from(limit), "{name} {edns:?}");
            let dnssec_ok = edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
            assert_eq!(
                message.edns.map(|e| e.flags().dnssec_ok),
                edns.map(|_| dnssec_ok)
            );
        }
    }
}

#[test]
fn the_cache_stays_within_its_bound_and_keeps_what_is_asked_often() {
    let hosts: Vec<String> = (0..2000).map(|i| format!("h{i}")).collect();
    let records: Vec<(&str, &str, &[&str])> = hosts
        .iter()
        .map(|name| (name.as_str(), "A", &["192.0.2.1"][..]))
        .collect();
    let spec = fixture::declared(&records, serde_json::json!({}));
    let zone = fixture::zone("example.test", &spec, &Default::default());
    let bound = 16 << 10;
    let (mut worker, _) = worker_on(Snapshot::new(vec![Arc::new(zone)], 1, 1), bound);
    let hot = query(1, "h0.example.test.", RecordType::A, None);
    for (at, host) in hosts.iter().enumerate() {
        let packet = query(2, &format!("{host}.example.test."), RecordType::A, None);
        ask(&mut worker, &packet);
        let (entries, bytes) = worker.cached();
        assert!(bytes <= bound, "{bytes} bytes cached after {at} names");
        assert!(entries > 0);
        if at > 0 {
            assert_eq!(
                ask(&mut worker, &hot).1,
                CacheLookup::Hit,
                "after {at} names"
            );
        }
    }
    let (entries, _) = worker.cached();
    assert!(entries < 200, "{entries} entries: not bounded");
}

#[test]
fn unusual_packets_take_the_full_path() {
    let (mut worker, published) = worker_on(fixture::snapshot(), 1 << 20);
    let snapshot = published.load();
    // A COOKIE changes nothing in the answer: cached like no option.
    let mut with_cookie = edns(1232, false);
    with_cookie
        .options_mut()
        .insert(EdnsOption::Unknown(10, vec![1, 2, 3, 4, 5, 6, 7, 8]));
    let packet = query(1, "www.example.test.", RecordType::A, Some(with_cookie));
    assert_eq!(ask(&mut worker, &packet).1, CacheLookup::Miss);
    assert_eq!(ask(&mut worker, &packet).1, CacheLookup::Hit);
    // Any other option (NSID here) is not cached.
    let mut with_nsid = edns(1232, false);
    with_nsid
        .options_mut()
        .insert(EdnsOption::Unknown(3, Vec::new()));
    let packet = query(1, "www.example.test.", RecordType::A, Some(with_nsid));
    assert_eq!(ask(&mut worker, &packet).1, CacheLookup::Bypass);
    assert_eq!(ask(&mut worker, &packet).1, CacheLookup::Bypass);
    // EDNS version 1: BADVERS, by the full path.
    let mut version = Edns::new();
    version.set_version(1);
    let packet = query(1, "www.example.test.", RecordType::A, Some(version));
    assert_eq!(ask(&mut worker, &packet).1, CacheLookup::Bypass);
    // NOTIFY, two questions, trailing bytes, garbage with a header.
    let mut notify = Message::new(5, MessageType::Query, OpCode::Notify);
    notify.add_query(Query::query(
        Name::from_ascii("example.test.").unwrap(),
        RecordType::SOA,
    ));
    let (bytes, lookup) = ask(&mut worker, &notify.to_bytes().unwrap());
    assert_eq!(lookup, CacheLookup::Bypass);
    assert_eq!(
        Message::from_vec(&bytes).unwrap().metadata.response_code,
        ResponseCode::NotAuth
    );
    let mut two = Message::new(6, MessageType::Query, OpCode::Query);
    for name in ["www.example.test.", "mail.example.test."] {
        two.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    }
    let (bytes, lookup) = ask(&mut worker, &two.to_bytes().unwrap());
    assert_eq!(lookup, CacheLookup::Bypass);
    assert_eq!(
        Message::from_vec(&bytes).unwrap().metadata.response_code,
        ResponseCode::FormErr
    );
    let mut trailing = query(8, "www.example.test.", RecordType::A, None);
    trailing.extend_from_slice(&[1, 2, 3]);
    assert_eq!(ask(&mut worker, &trailing).1, CacheLookup::Bypass);
    let mut garbage = query(9, "www.example.test.", RecordType::A, None);
    garbage[12] = 0x3f;
    let (bytes, lookup) = ask(&mut worker, &garbage);
    assert_eq!(lookup, CacheLookup::Bypass);
    assert_eq!(bytes, uncached(&snapshot, &garbage));
    let message = Message::from_vec(&bytes).unwrap();
    assert_eq!(message.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(message.metadata.id, 9);
    // Responses and runts get nothing.
    let mut response = query(10, "www.example.test.", RecordType::A, None);
    response[2] |= 0x80;
    assert!(worker.answer(&response, client()).is_none());
    assert!(worker.answer(&response[..11], client()).is_none());
}

#[test]
fn random_and_mangled_packets_never_panic_the_cached_path() {
    let (mut worker, _) = worker_on(fixture::snapshot(), 64 << 10);
    let seeds: Vec<Vec<u8>> = [
        ("www.example.test.", RecordType::A, None),
        ("Chain.example.test.", RecordType::A, Some(edns(1232, true))),
        (
            "x.wild.example.test.",
            RecordType::ANY,
            Some(edns(512, false)),
        ),
        ("1.2.0.192.in-addr.arpa.", RecordType::PTR, None),
        (
            "nope.example.test.",
            RecordType::MX,
            Some(edns(4096, false)),
        ),
    ]
    .into_iter()
    .map(|(name, qtype, edns)| query(1, name, qtype, edns))
    .collect();
    let mut random = uc_testkit::Xorshift(0x9e37_79b9_7f4a_7c15);
    let mut answered = 0;
    for round in 0..40_000 {
        let mut packet = seeds[random.next() as usize % seeds.len()].clone();
        match round % 3 {
            0 => {
                for _ in 0..=random.next() % 3 {
                    let at = random.next() as usize % packet.len();
                    packet[at] = random.next() as u8;
                }
            }
            1 => packet.truncate(random.next() as usize % packet.len()),
            _ => {
                // Case changes only: always cacheable.
                for byte in &mut packet[12..] {
                    if byte.is_ascii_lowercase() && random.next().is_multiple_of(2) {
                        byte.make_ascii_uppercase();
                    }
                }
            }
        }
        if let Some(done) = worker.answer(&packet, client()) {
            answered += 1;
            assert!(worker.out.len() <= 1232, "round {round}");
            assert_eq!(worker.out[..2], packet[..2], "round {round}: the ID");
            if round % 3 == 2 {
                assert_ne!(done.lookup, CacheLookup::Bypass, "round {round}");
            }
        }
    }
    assert!(answered > 10_000, "{answered} answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_through_serve_are_answered_and_counted() {
    let published = Arc::new(Published::default());
    published.store(Arc::new(fixture::snapshot()));
    let metrics = Arc::new(Metrics::new());
    let handler = crate::server::Handler {
        published: published.clone(),
        metrics: metrics.clone(),
    };
    let listen = ["127.0.0.1:0".parse().unwrap()];
    let (server, bound) = crate::server::serve(handler, &listen, 2).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buffer = [0; 2048];
    for round in 0..3_u16 {
        let packet = query(round, "WWW.example.test.", RecordType::A, None);
        socket.send_to(&packet, bound[0]).unwrap();
        let (len, _) = socket.recv_from(&mut buffer).unwrap();
        let message = Message::from_vec(&buffer[..len]).unwrap();
        assert_eq!(message.metadata.id, round);
        assert_eq!(message.queries[0].name().to_string(), "WWW.example.test.");
        let addresses: Vec<String> = message
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => a.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(addresses, ["192.0.2.10", "192.0.2.11"]);
    }
    // A burst: read in batches, every query answered once, under its ID.
    for id in 100..300_u16 {
        let name = format!("h{id}.example.test.");
        socket
            .send_to(&query(id, &name, RecordType::A, None), bound[0])
            .unwrap();
    }
    let mut ids = Vec::new();
    for _ in 100..300 {
        let (len, _) = socket.recv_from(&mut buffer).unwrap();
        let message = Message::from_vec(&buffer[..len]).unwrap();
        assert_eq!(message.metadata.response_code, ResponseCode::NXDomain);
        let id = message.metadata.id;
        assert_eq!(
            message.queries[0].name().to_string(),
            format!("h{id}.example.test.")
        );
        ids.push(id);
    }
    ids.sort_unstable();
    assert_eq!(ids, (100..300).collect::<Vec<u16>>());
    // Counted after the answer is sent: wait for the worker to get there.
    let mut text = metrics.render();
    for _ in 0..100 {
        if text.contains("uc_dns_query_duration_seconds_count 203\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = metrics.render();
    }
    for line in [
        "uc_dns_queries_total{qtype=\"A\",rcode=\"NOERROR\"} 3\n",
        "uc_dns_queries_total{qtype=\"A\",rcode=\"NXDOMAIN\"} 200\n",
        "uc_dns_query_duration_seconds_count 203\n",
        "uc_dns_packet_cache_lookups_total{result=\"miss\"} 201\n",
        "uc_dns_packet_cache_lookups_total{result=\"hit\"} 2\n",
        "uc_dns_packet_cache_lookups_total{result=\"bypass\"} 0\n",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    server.shutdown_token().cancel();
}
