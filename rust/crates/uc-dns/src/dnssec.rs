//! Online DNSSEC signing (RFC 4033–4035) of the answers of zones declared
//! with `dnssec.enable`: one Combined Signing Key per zone (`key`), RRSIGs
//! on every authoritative RRset of an answer to a query with the DO bit,
//! kept per zone version (`signer`), and denial of existence by minimally
//! covering NSEC records made per answer (`denial`).
//!
//! `secure` works on an answer `answer::resolve` made, so signed and
//! unsigned answers hold the same data; it finds out from `Zone::locate`
//! what each name is (a record of the zone, a wildcard expansion, a PTR a
//! pattern generated, a delegation) and signs and proves accordingly.

pub mod denial;
pub mod key;
pub mod keyring;
pub mod signer;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use crate::answer::{Answer, Question};
use crate::zone::{label_count, Located, Zone};
pub use key::{KeyError, ZoneKey};
pub use keyring::{KeyProblem, Keyring};
pub use signer::ZoneSigner;

/// Adds RRSIGs and NSECs to `reply`, the answer of `zone` to `question`.
pub fn secure(zone: &Zone, signer: &ZoneSigner, question: &Question, reply: &mut Answer) {
    let now = signer::now();
    let negative_ttl = zone.negative_soa().ttl;
    let qname = &question.original;
    if question.qtype == RecordType::NSEC
        && reply.answers.is_empty()
        && reply.rcode == ResponseCode::NoError
    {
        // The NSEC a NODATA would carry says an NSEC exists here: answer it.
        if let Some(nsec) = at_name(zone, qname, negative_ttl) {
            if !matches!(zone.locate(&question.name), Located::Cut(_)) {
                reply.authority.clear();
                reply.answers = vec![nsec];
                reply.answers.extend(signer.sign(&reply.answers, now));
                return;
            }
        }
    }
    let mut proofs: Vec<Record> = Vec::new();
    let answers = std::mem::take(&mut reply.answers);
    reply.answers = sign_section(zone, signer, answers, now, |owner, wildcard| {
        // A wildcard answer proves the asked name itself does not exist (RFC 4035 §3.1.3.3).
        let encloser = wildcard.base_name();
        proofs.extend(next_closer_cover(owner, &encloser, negative_ttl));
    });
    let negative = reply
        .authority
        .iter()
        .any(|record| record.record_type() == RecordType::SOA);
    let mut authority = Vec::new();
    for record in std::mem::take(&mut reply.authority) {
        match record.record_type() {
            RecordType::SOA => {
                let rrsig = signer.sign_kept(
                    &LowerName::new(&zone.apex),
                    std::slice::from_ref(&record),
                    zone.ttl,
                    now,
                );
                authority.push(record);
                authority.extend(rrsig);
            }
            RecordType::NS => {
                // A referral: the NS set is the child's, unsigned; NSEC proves no DS.
                if !proofs.iter().any(|p| p.name == record.name) {
                    proofs.extend(at_name(zone, &record.name, negative_ttl));
                }
                authority.push(record);
            }
            _ => authority.push(record),
        }
    }
    if negative {
        // The name the answer ends at: the last alias' target, or the asked name.
        let last = match reply
            .answers
            .iter()
            .rev()
            .find(|r| r.record_type() == RecordType::CNAME)
        {
            Some(Record {
                data: RData::CNAME(target),
                ..
            }) => target.0.clone(),
            _ => qname.clone(),
        };
        proofs.extend(denial_of(zone, &last, negative_ttl));
    }
    let mut owners = Vec::new();
    proofs.retain(|nsec| {
        let new = !owners.contains(&nsec.name);
        owners.push(nsec.name.clone());
        new
    });
    for nsec in proofs {
        let owner = LowerName::new(&nsec.name);
        let rrset = std::slice::from_ref(&nsec);
        // An NSEC at a name of the zone is the same every time; one around
        // an asked name that does not exist is not worth keeping.
        let rrsig = match zone.locate(&owner) {
            Located::Node { .. } | Located::EmptyNonTerminal | Located::Cut(_) => {
                signer.sign_kept(&owner, rrset, nsec.ttl, now)
            }
            _ => signer.sign(rrset, now),
        };
        authority.push(nsec);
        authority.extend(rrsig);
    }
    reply.authority = authority;
    let additional = std::mem::take(&mut reply.additional);
    reply.additional = sign_section(zone, signer, additional, now, |_, _| {});
}

/// `records` with each RRset followed by its RRSIG: kept signatures for
/// RRsets of the zone, fresh ones for generated PTRs; glue (below a
/// delegation) stays unsigned. `wildcard_answer(owner, wildcard)` is told
/// of each RRset a wildcard answered.
fn sign_section(
    zone: &Zone,
    signer: &ZoneSigner,
    records: Vec<Record>,
    now: u32,
    mut wildcard_answer: impl FnMut(&Name, &Name),
) -> Vec<Record> {
    let mut signed = Vec::with_capacity(records.len() * 2);
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let end = rest
            .iter()
            .position(|r| r.name != first.name || r.record_type() != first.record_type())
            .unwrap_or(rest.len());
        let (rrset, after) = rest.split_at(end);
        rest = after;
        signed.extend_from_slice(rrset);
        let owner = LowerName::new(&first.name);
        let rrsig = if first.record_type() == RecordType::DNSKEY {
            signer.sign_kept(&owner, rrset, first.ttl, now)
        } else {
            match zone.locate(&owner) {
                Located::Node { .. } => signer.sign_kept(&owner, rrset, first.ttl, now),
                Located::Wildcard { wildcard, .. } => {
                    wildcard_answer(&first.name, &Name::from(&wildcard));
                    signer.sign_kept(&wildcard, rrset, first.ttl, now)
                }
                Located::Generated(_) => signer.sign(rrset, now),
                Located::Cut(_) | Located::EmptyNonTerminal | Located::Absent { .. } => None,
            }
        };
        signed.extend(rrsig);
    }
    signed
}

/// The NSECs proving `name` has not the type asked (NODATA: the NSEC at
/// the name lists what it has) or does not exist (NXDOMAIN, and no
/// wildcard could have answered instead).
fn denial_of(zone: &Zone, name: &Name, ttl: u32) -> Vec<Record> {
    match zone.locate(&LowerName::new(name)) {
        Located::Absent { encloser } => {
            let encloser = Name::from(&encloser);
            let mut proofs: Vec<Record> = next_closer_cover(name, &encloser, ttl)
                .into_iter()
                .collect();
            // No wildcard at the closest encloser either (RFC 4035 §3.1.3.2).
            if let Ok(wildcard) = encloser.prepend_label("*") {
                let covered = proofs.first().is_some_and(|nsec| covers(nsec, &wildcard));
                if !covered {
                    proofs.extend(denial::covering(&wildcard, ttl));
                }
            }
            proofs
        }
        Located::Wildcard { wildcard, node } => {
            let wildcard = Name::from(&wildcard);
            let mut proofs: Vec<Record> = next_closer_cover(name, &wildcard.base_name(), ttl)
                .into_iter()
                .collect();
            proofs.extend(denial::at(&wildcard, node.types().collect(), ttl));
            proofs
        }
        _ => at_name(zone, name, ttl).into_iter().collect(),
    }
}

/// The NSEC at `name`, which exists, listing the types it has.
fn at_name(zone: &Zone, name: &Name, ttl: u32) -> Option<Record> {
    let types = match zone.locate(&LowerName::new(name)) {
        Located::Node { node, apex } => {
            let mut types: Vec<RecordType> = node.types().collect();
            if apex {
                types.extend([RecordType::SOA, RecordType::DNSKEY]);
            }
            types
        }
        Located::Cut(cut) if cut == LowerName::new(name) => vec![RecordType::NS],
        Located::Generated(_) => vec![RecordType::PTR],
        _ => Vec::new(),
    };
    denial::at(name, types, ttl)
}

/// The NSEC covering the name one label below `encloser` on the way to
/// `name`, and so `name` and everything below it.
fn next_closer_cover(name: &Name, encloser: &Name, ttl: u32) -> Option<Record> {
    let next_closer = name.trim_to(label_count(encloser) + 1);
    denial::covering(&next_closer, ttl)
}

/// Whether the NSEC `nsec` covers `name` (owner < name < next).
fn covers(nsec: &Record, name: &Name) -> bool {
    let RData::DNSSEC(DNSSECRData::NSEC(data)) = &nsec.data else {
        return false;
    };
    nsec.name < *name && *name < *data.next_domain_name()
}

#[cfg(test)]
mod tests;
