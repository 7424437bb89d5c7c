//! The answer to one question, from a snapshot and nothing else: no I/O,
//! so every protocol rule is a table test. As Knot answers: REFUSED outside
//! the served zones, AA on authoritative data, NXDOMAIN or NODATA with the
//! SOA (negative TTL) in authority, CNAMEs chased inside the zone, referrals
//! with glue below delegations, additional addresses for MX, SRV and NS
//! targets, and zone transfers refused (those a listed secondary may make
//! are `transfer`'s). A zone served signed also has its DNSKEY at the
//! apex, and with the DO bit its answers carry RRSIGs and NSECs (`dnssec`).

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use crate::dnssec::{self, ZoneSigner};
use crate::snapshot::Snapshot;
use crate::zone::{Lookup, Zone};

/// CNAME links followed before giving up (a loop or a long chain).
const MAX_ALIASES: usize = 8;

#[derive(Debug, Clone)]
pub struct Question {
    pub name: LowerName,
    /// As the client spelled it: the owner of wildcard-synthesised records.
    pub original: Name,
    pub qtype: RecordType,
    pub qclass: DNSClass,
}

impl Question {
    pub fn new(name: Name, qtype: RecordType) -> Question {
        Question {
            name: LowerName::new(&name),
            original: name,
            qtype,
            qclass: DNSClass::IN,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

impl Answer {
    pub fn refused() -> Answer {
        Answer::error(ResponseCode::Refused)
    }

    /// No records, not authoritative, `rcode`.
    pub fn error(rcode: ResponseCode) -> Answer {
        Answer::empty(rcode, false)
    }

    fn empty(rcode: ResponseCode, authoritative: bool) -> Answer {
        Answer {
            rcode,
            authoritative,
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }
}

/// The answer to `question` without DNSSEC records (no DO bit).
pub fn answer(snapshot: &Snapshot, question: &Question) -> Answer {
    answer_dnssec(snapshot, question, false)
}

/// The answer to `question`; with `dnssec_ok` (the query's DO bit), signed
/// when its zone is (RFC 4035 §3.1).
pub fn answer_dnssec(snapshot: &Snapshot, question: &Question, dnssec_ok: bool) -> Answer {
    let mut reply = resolve(snapshot, question);
    if dnssec_ok && question.qclass == DNSClass::IN && reply.rcode != ResponseCode::Refused {
        if let Some(zone) = snapshot.find_zone(&question.name) {
            if let Some(signer) = snapshot.signer(&LowerName::new(&zone.apex)) {
                dnssec::secure(zone, signer, question, &mut reply);
            }
        }
    }
    // The asked name is answered in the asker's spelling, as Knot does.
    for record in &mut reply.answers {
        if record.name == question.original {
            record.name = question.original.clone();
        }
    }
    reply
}

fn resolve(snapshot: &Snapshot, question: &Question) -> Answer {
    if question.qclass != DNSClass::IN {
        return Answer::refused();
    }
    let Some(zone) = snapshot.find_zone(&question.name) else {
        return Answer::refused();
    };
    if matches!(question.qtype, RecordType::AXFR | RecordType::IXFR) {
        // A transfer the client may make is answered by `transfer` instead.
        return Answer::refused();
    }
    let signer = snapshot.signer(&LowerName::new(&zone.apex));
    let mut reply = Answer::empty(ResponseCode::NoError, true);
    if let Some(dnskey) = apex_dnskey(zone, signer.map(|s| &**s), question) {
        reply.answers.push(dnskey);
        return reply;
    }
    let mut name = question.name.clone();
    let mut original = question.original.clone();
    for _ in 0..=MAX_ALIASES {
        match zone.lookup(&name, &original, question.qtype) {
            Lookup::Found(records) => {
                add_targets(zone, &records, &mut reply.additional);
                reply.answers.extend(records);
                return reply;
            }
            Lookup::Alias(alias) => {
                let RData::CNAME(target) = &alias.data else {
                    return reply;
                };
                let target = target.0.clone();
                reply.answers.push(alias);
                // Outside this zone the resolver follows on its own.
                if !zone.apex.zone_of(&target) || looped(&reply.answers, &target) {
                    return reply;
                }
                name = LowerName::new(&target);
                original = target;
            }
            Lookup::NoData => {
                reply.authority.push(zone.negative_soa());
                return reply;
            }
            Lookup::NxDomain => {
                // RFC 6604: the code is that of the last name in the chain.
                reply.rcode = ResponseCode::NXDomain;
                reply.authority.push(zone.negative_soa());
                return reply;
            }
            Lookup::Referral(cut) => {
                let nameservers = zone.delegation(&cut);
                add_targets(zone, &nameservers, &mut reply.additional);
                reply.authority.extend(nameservers);
                // Only the referral itself is not authoritative data.
                reply.authoritative = !reply.answers.is_empty();
                return reply;
            }
        }
    }
    reply
}

/// The DNSKEY RRset, when `question` asks for it at a signed zone's apex
/// (ANY there still answers the SOA, the lowest type).
fn apex_dnskey(zone: &Zone, signer: Option<&ZoneSigner>, question: &Question) -> Option<Record> {
    let signer = signer?;
    (question.qtype == RecordType::DNSKEY && *question.name == zone.apex)
        .then(|| signer.dnskey().clone())
}

/// Whether `target` already owns a CNAME in the answer (a loop).
fn looped(answers: &[Record], target: &Name) -> bool {
    answers.iter().any(|record| record.name == *target)
}

/// Addresses in `zone` of the names MX, SRV and NS records point at.
fn add_targets(zone: &Zone, records: &[Record], additional: &mut Vec<Record>) {
    for record in records {
        let target = match &record.data {
            RData::MX(mx) => &mx.exchange,
            RData::SRV(srv) => &srv.target,
            RData::NS(ns) => &ns.0,
            _ => continue,
        };
        if !zone.apex.zone_of(target) {
            continue;
        }
        for address in zone.addresses(target) {
            if !additional.contains(&address) {
                additional.push(address);
            }
        }
    }
}

#[cfg(test)]
mod tests;
