//! Denial of existence by minimally covering NSEC records, made per answer
//! ("white lies", RFC 4470), as online signers do: every name is one
//! `Zone::locate` away, including the PTRs patterns generate and service
//! records that change with their instances, so no chain over the zone's
//! names is kept, and an NSEC names nothing but the asked name's
//! neighbours (no zone walking).
//!
//! The names just around a name, in canonical order (RFC 4034 §6.1):
//! `\000.<name>` directly follows it; `<label>\000.<parent>` follows it
//! and everything below it; `<label minus one>\255….<parent>` comes just
//! before it and after every real sibling before it.

use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
use hickory_proto::rr::{Label, Name, RData, Record, RecordType};

const MAX_LABEL: usize = 63;
const MAX_NAME: usize = 255;

/// `\000.<name>`: the first name after `name`.
pub fn just_after(name: &Name) -> Option<Name> {
    name.to_lowercase()
        .prepend_label(Label::from_raw_bytes(&[0]).ok()?)
        .ok()
}

/// `<first label>\000.<parent>`: the first name after `name` and all below it.
pub fn after_subtree(name: &Name) -> Option<Name> {
    let name = name.to_lowercase();
    let mut label = name.iter().next()?.to_vec();
    if label.len() >= MAX_LABEL {
        return None;
    }
    label.push(0);
    with_first_label(&name, &label)
}

/// A name before `name` with no name a zone holds in between: its first
/// label with the last octet one lower, filled up with 0xff. `None` when
/// the label ends in octet 0 (its predecessor is the deepest name below
/// the label without it: not worth spelling for such a query).
pub fn before(name: &Name) -> Option<Name> {
    let name = name.to_lowercase();
    let mut label = name.iter().next()?.to_vec();
    let last = label.pop()?;
    if last == 0 {
        return None;
    }
    let mut lower = last - 1;
    // Canonical order compares upper case as lower case: 'Z' would sort after '['.
    if lower.is_ascii_uppercase() {
        lower = b'@';
    }
    label.push(lower);
    let room = MAX_NAME.saturating_sub(wire_len(&name) - label.len());
    let fill = MAX_LABEL.min(room).saturating_sub(label.len());
    label.extend(std::iter::repeat_n(0xff, fill));
    with_first_label(&name, &label)
}

fn wire_len(name: &Name) -> usize {
    1 + name.iter().map(|label| label.len() + 1).sum::<usize>()
}

fn with_first_label(name: &Name, label: &[u8]) -> Option<Name> {
    let parent = name.base_name();
    parent
        .prepend_label(Label::from_raw_bytes(label).ok()?)
        .ok()
}

/// An NSEC record at `owner` to `next` listing `types` (NSEC and RRSIG added).
pub fn nsec(owner: Name, next: Name, types: Vec<RecordType>, ttl: u32) -> Record {
    let data = NSEC::new_cover_self(next, types);
    Record::from_rdata(owner, ttl, RData::DNSSEC(DNSSECRData::NSEC(data)))
}

/// The NSEC proving nothing exists at or below `name`: from just before it
/// to just after everything below it. `None` for names `before` cannot
/// precede.
pub fn covering(name: &Name, ttl: u32) -> Option<Record> {
    Some(nsec(before(name)?, after_subtree(name)?, Vec::new(), ttl))
}

/// The NSEC at `name` proving it has only `types`, covering nothing else.
pub fn at(name: &Name, types: Vec<RecordType>, ttl: u32) -> Option<Record> {
    Some(nsec(name.to_lowercase(), just_after(name)?, types, ttl))
}
