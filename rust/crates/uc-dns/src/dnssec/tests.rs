//! Signed answers from the fixture zones, each RRSIG checked with the
//! zone's public key (hickory's verifier, not ours); NSEC proofs checked
//! for what they cover; the names around a name in canonical order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use hickory_proto::dnssec::crypto::EcdsaSigningKey;
use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC, RRSIG};
use hickory_proto::dnssec::{Algorithm, PublicKey, TBS};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use super::denial::{after_subtree, before, just_after};
use super::{Keyring, ZoneKey, ZoneSigner};
use crate::answer::{answer_dnssec, Answer, Question};
use crate::fixture;
use crate::snapshot::Snapshot;

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn new_key(apex: &Name) -> Arc<ZoneKey> {
    let der = EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256).unwrap();
    let path = std::path::Path::new("/test/key.der");
    Arc::new(ZoneKey::from_bytes(der.secret_pkcs8_der(), path, apex).unwrap())
}

/// The fixture zones, example.test and 2.0.192.in-addr.arpa signed.
fn signed_snapshot() -> Snapshot {
    let unsigned = fixture::snapshot();
    let zones: Vec<_> = unsigned.zones().cloned().collect();
    let signers = zones
        .iter()
        .map(|zone| {
            Arc::new(ZoneSigner::new(
                zone.apex.clone(),
                new_key(&zone.apex),
                zone.serial,
                zone.ttl,
            ))
        })
        .collect();
    Snapshot::new(zones, 42, 1).with_dnssec(signers, Vec::new())
}

fn ask(snapshot: &Snapshot, qname: &str, qtype: RecordType) -> Answer {
    answer_dnssec(snapshot, &Question::new(name(qname), qtype), true)
}

fn rrsig(record: &Record) -> Option<&RRSIG> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some(sig),
        _ => None,
    }
}

fn nsec(record: &Record) -> Option<&NSEC> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::NSEC(nsec)) => Some(nsec),
        _ => None,
    }
}

/// Checks every RRSIG of `section` against the RRset it covers, and that
/// every RRset but those in `unsigned` has one; returns how many it checked.
fn verify_section(snapshot: &Snapshot, section: &[Record], unsigned: &[RecordType]) -> usize {
    let mut checked = 0;
    for record in section {
        if let Some(sig) = rrsig(record) {
            let input = sig.input();
            let apex = LowerName::new(&input.signer_name);
            let key = snapshot
                .signer(&apex)
                .unwrap()
                .key
                .dnskey
                .public_key()
                .clone();
            let rrset: Vec<&Record> = section
                .iter()
                .filter(|r| r.name == record.name && r.record_type() == input.type_covered)
                .collect();
            assert!(!rrset.is_empty(), "RRSIG without its RRset: {record}");
            let tbs =
                TBS::from_input(&record.name, DNSClass::IN, input, rrset.into_iter()).unwrap();
            key.verify(tbs.as_ref(), sig.sig()).unwrap_or_else(|err| {
                panic!(
                    "RRSIG of {} {} does not verify: {err}",
                    record.name, input.type_covered
                )
            });
            checked += 1;
        } else if !unsigned.contains(&record.record_type()) {
            let signed = section.iter().any(|r| {
                r.name == record.name
                    && rrsig(r).is_some_and(|s| s.input().type_covered == record.record_type())
            });
            assert!(signed, "no RRSIG for {record}");
        }
    }
    checked
}

fn verify(snapshot: &Snapshot, reply: &Answer) -> usize {
    // A referral's NS set and glue are the child's: unsigned.
    let referral = reply
        .authority
        .iter()
        .any(|r| r.record_type() == RecordType::NS);
    let glue: &[RecordType] = if referral {
        &[RecordType::A, RecordType::AAAA]
    } else {
        &[]
    };
    verify_section(snapshot, &reply.answers, &[])
        + verify_section(snapshot, &reply.authority, &[RecordType::NS])
        + verify_section(snapshot, &reply.additional, glue)
}

/// Whether an NSEC of `reply` covers `target` (strictly between owner and next).
fn covered(reply: &Answer, target: &str) -> bool {
    let target = name(target);
    reply.authority.iter().any(|record| {
        nsec(record).is_some_and(|nsec| record.name < target && target < *nsec.next_domain_name())
    })
}

/// The types the NSEC at `owner` lists.
fn nsec_types(reply: &Answer, owner: &str) -> Vec<RecordType> {
    let owner = name(owner);
    let record = reply
        .authority
        .iter()
        .find(|r| r.name == owner && nsec(r).is_some())
        .unwrap();
    nsec(record).unwrap().type_bit_maps().collect()
}

#[test]
fn every_rrset_of_a_signed_answer_has_a_valid_rrsig() {
    let snapshot = signed_snapshot();
    let cases = [
        ("www.example.test.", RecordType::A, 1),
        ("example.test.", RecordType::DNSKEY, 1),
        ("chain.example.test.", RecordType::A, 3),
        ("mail.example.test.", RecordType::MX, 2),
        ("Some.Wild.example.test.", RecordType::A, 2),
        ("web.example.test.", RecordType::A, 1),
        ("nope.example.test.", RecordType::A, 3),
        ("txt.example.test.", RecordType::A, 2),
        ("b.c.example.test.", RecordType::A, 2),
        ("x.sub.example.test.", RecordType::A, 1),
        ("sub.example.test.", RecordType::DS, 2),
        ("5.2.0.192.in-addr.arpa.", RecordType::PTR, 1),
        ("10.2.0.192.in-addr.arpa.", RecordType::PTR, 1),
    ];
    for (qname, qtype, rrsigs) in cases {
        let reply = ask(&snapshot, qname, qtype);
        assert_eq!(
            verify(&snapshot, &reply),
            rrsigs,
            "{qname} {qtype}: {reply:#?}"
        );
    }
}

#[test]
fn nxdomain_proves_the_name_and_the_wildcard_absent() {
    let snapshot = signed_snapshot();
    let reply = ask(&snapshot, "x.nope.example.test.", RecordType::A);
    assert_eq!(reply.rcode, ResponseCode::NXDomain);
    assert!(covered(&reply, "nope.example.test."));
    assert!(covered(&reply, "x.nope.example.test."));
    assert!(covered(&reply, "*.example.test."));
    // Nothing that exists is covered.
    for existing in [
        "example.test.",
        "mx.example.test.",
        "ns1.example.test.",
        "web.example.test.",
    ] {
        assert!(!covered(&reply, existing), "{existing}");
    }
}

#[test]
fn nodata_lists_what_the_name_has() {
    let snapshot = signed_snapshot();
    let at_apex = ask(&snapshot, "example.test.", RecordType::TXT);
    let types = nsec_types(&at_apex, "example.test.");
    for kind in [
        RecordType::A,
        RecordType::NS,
        RecordType::SOA,
        RecordType::DNSKEY,
        RecordType::NSEC,
    ] {
        assert!(types.contains(&kind), "{kind} missing from {types:?}");
    }
    let delegation = ask(&snapshot, "sub.example.test.", RecordType::DS);
    assert_eq!(
        nsec_types(&delegation, "sub.example.test."),
        [RecordType::NS, RecordType::RRSIG, RecordType::NSEC]
    );
    // A wildcard's NODATA: the asked name does not exist, the wildcard has no TXT.
    let wild = ask(&snapshot, "x.wild.example.test.", RecordType::TXT);
    assert!(covered(&wild, "x.wild.example.test."));
    assert!(nsec_types(&wild, "*.wild.example.test.").contains(&RecordType::A));
}

#[test]
fn a_wildcard_answer_proves_the_asked_name_absent() {
    let snapshot = signed_snapshot();
    let reply = ask(&snapshot, "deep.x.wild.example.test.", RecordType::A);
    let sig = reply.answers.iter().find_map(rrsig).unwrap();
    assert_eq!(
        sig.input().num_labels,
        3,
        "labels of *.wild.example.test. without the *"
    );
    assert!(covered(&reply, "x.wild.example.test."));
}

#[test]
fn nothing_is_added_without_the_do_bit_or_a_key() {
    let signed = signed_snapshot();
    let plain = answer_dnssec(
        &signed,
        &Question::new(name("www.example.test."), RecordType::A),
        false,
    );
    assert_eq!(plain.answers.len(), 2);
    let unsigned = fixture::snapshot();
    let reply = ask(&unsigned, "www.example.test.", RecordType::A);
    assert_eq!(reply.answers.len(), 2);
    let dnskey = ask(&unsigned, "example.test.", RecordType::DNSKEY);
    assert!(dnskey.answers.is_empty());
    // The DNSKEY is there without DO too, unsigned.
    let dnskey = answer_dnssec(
        &signed,
        &Question::new(name("example.test."), RecordType::DNSKEY),
        false,
    );
    assert_eq!(dnskey.answers.len(), 1);
}

#[test]
fn an_rrset_is_signed_once_per_zone_version() {
    let snapshot = signed_snapshot();
    let first = ask(&snapshot, "www.example.test.", RecordType::A);
    let second = ask(&snapshot, "WWW.example.test.", RecordType::A);
    // ECDSA signatures are randomised: equal bytes mean the same signature.
    let sig = |reply: &Answer| reply.answers.iter().find_map(rrsig).unwrap().sig().to_vec();
    assert_eq!(sig(&first), sig(&second));
    let signer = snapshot
        .signer(&LowerName::new(&name("example.test.")))
        .unwrap();
    assert_eq!(signer.kept_count(), 1);
}

#[test]
fn a_zone_whose_key_cannot_be_read_is_reported_not_signed() {
    let snapshot = fixture::snapshot();
    let zone = snapshot
        .zones()
        .find(|z| z.apex == name("example.test."))
        .unwrap()
        .clone();
    let spec = uc_types::Dnssec {
        enable: true,
        key_file: Some("/nonexistent/example.test.pem".to_owned()),
    };
    let mut keyring = Keyring::default();
    let (signers, problems) = keyring.sign(&[("example.test".to_owned(), zone, spec)]);
    assert!(signers.is_empty());
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key_file, "/nonexistent/example.test.pem");
    assert!(
        problems[0].error.contains("cannot read"),
        "{}",
        problems[0].error
    );
}

#[test]
fn the_names_around_a_name_sort_around_it() {
    let bracket = Name::from_labels([&b"["[..], b"example"]).unwrap();
    let names = ["b.example.", "www.example.", "*.example.", "a.b.example."];
    for around in names.into_iter().map(name).chain([bracket]) {
        let lower = before(&around).unwrap();
        assert!(lower < around, "{lower} < {around}");
        assert!(around < just_after(&around).unwrap());
        assert!(around < after_subtree(&around).unwrap());
        // Everything below the name sorts before the end of its subtree.
        let below = around.prepend_label("zzz").unwrap();
        assert!(below < after_subtree(&around).unwrap());
        assert!(lower.base_name() == around.base_name());
    }
    // The real sibling just before stays before the made-up one.
    assert!(name("a.example.") < before(&name("b.example.")).unwrap());
    assert!(name("ww.example.") < before(&name("www.example.")).unwrap());
    // A label ending in octet 0 has no predecessor worth spelling.
    let zero = Name::from_labels([&b"a\0"[..], b"example"]).unwrap();
    assert!(before(&zero).is_none());
}

#[test]
fn a_key_file_that_is_not_a_p256_pkcs8_key_says_what_to_do() {
    let apex = name("example.test.");
    let path = std::path::Path::new("/keys/example.test.pem");
    let sec1 = b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
    let err = ZoneKey::from_bytes(sec1, path, &apex)
        .unwrap_err()
        .to_string();
    assert!(err.contains("openssl pkcs8 -topk8"), "{err}");
    let cert = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let err = ZoneKey::from_bytes(cert, path, &apex)
        .unwrap_err()
        .to_string();
    assert!(err.contains("openssl genpkey"), "{err}");
    let p384 = EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP384SHA384).unwrap();
    let err = ZoneKey::from_bytes(p384.secret_pkcs8_der(), path, &apex)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an ECDSA P-256 key"), "{err}");
    // The DS of a good key is the SHA-256 of its DNSKEY (RFC 4509): 32 bytes.
    let key = new_key(&apex);
    assert_eq!(key.ds.digest().len(), 32);
    assert!(key.ds_line(&apex).starts_with("example.test. IN DS "));
}

#[test]
fn an_nsec_query_at_a_name_gets_its_nsec() {
    let snapshot = signed_snapshot();
    let reply = ask(&snapshot, "www.example.test.", RecordType::NSEC);
    assert_eq!(reply.rcode, ResponseCode::NoError);
    assert!(reply.authority.is_empty());
    let types: Vec<RecordType> = nsec(&reply.answers[0]).unwrap().type_bit_maps().collect();
    assert_eq!(types, [RecordType::A, RecordType::RRSIG, RecordType::NSEC]);
    assert_eq!(verify(&snapshot, &reply), 1);
    // A name that does not exist still gets NXDOMAIN and its proofs.
    let absent = ask(&snapshot, "nope.example.test.", RecordType::NSEC);
    assert_eq!(absent.rcode, ResponseCode::NXDomain);
}

#[test]
fn a_kept_signature_is_made_again_when_half_its_validity_is_gone() {
    use super::signer::{INCEPTION_BACKDATE_SECS, RENEW_BEFORE_SECS, VALIDITY_SECS};
    let apex = name("example.test.");
    let signer = ZoneSigner::new(apex.clone(), new_key(&apex), 1, 300);
    let rrset = [signer.dnskey().clone()];
    let owner = LowerName::new(&apex);
    let at = |now: u32| signer.sign_kept(&owner, &rrset, 300, now).unwrap();
    let first = at(1_000_000);
    let input = rrsig(&first).unwrap().input().clone();
    assert_eq!(
        input.sig_inception.get(),
        1_000_000 - INCEPTION_BACKDATE_SECS
    );
    assert_eq!(
        input.sig_expiration.get() - input.sig_inception.get(),
        VALIDITY_SECS
    );
    // Still more than RENEW_BEFORE left: the same signature.
    let renew_at = input.sig_expiration.get() - RENEW_BEFORE_SECS;
    assert_eq!(at(renew_at - 1), first);
    // Less left: a new one, valid from now.
    let renewed = at(renew_at + 1);
    assert_ne!(renewed, first);
    assert_eq!(
        rrsig(&renewed).unwrap().input().sig_inception.get(),
        renew_at + 1 - INCEPTION_BACKDATE_SECS
    );
}
