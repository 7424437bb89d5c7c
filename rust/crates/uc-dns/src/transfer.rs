//! Zone transfers to a zone's listed secondaries, as pure functions of the
//! snapshot: AXFR (RFC 5936: the SOA, every record, the SOA again) and IXFR
//! (RFC 1995: the differences from the client's serial when that version
//! is kept, else the whole zone, which is always a valid IXFR answer), cut
//! into messages that fit TCP's 64 KiB. Records generated from
//! `ptrPatterns` are answered, not transferred (as Knot's mod-synthrecord).

use std::net::IpAddr;

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::OpCode;
use hickory_server::proto::rr::{DNSClass, LowerName, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncodable;
use hickory_server::zone_handler::MessageRequest;

use crate::catalog::serial_greater;
use crate::snapshot::Snapshot;
use crate::zone::Zone;

/// Records of one message at most this many bytes (uncompressed), leaving
/// room below 65535 for the header, the question and OPT.
pub const MESSAGE_BYTES: usize = 65_000;

/// What a transfer request gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Transfer {
    /// The client is not one of the zone's secondaries: REFUSED.
    Refused,
    /// The whole zone, SOA first and last (AXFR, or IXFR from a serial not kept).
    Full(Vec<Record>),
    /// IXFR: the current SOA, the client's SOA, what went, the current SOA,
    /// what came, the current SOA (one condensed difference).
    Incremental(Vec<Record>),
    /// IXFR from the current serial or newer, or over UDP: the SOA alone.
    Current(Box<Record>),
}

impl Transfer {
    pub fn records(&self) -> &[Record] {
        match self {
            Transfer::Refused => &[],
            Transfer::Full(records) | Transfer::Incremental(records) => records,
            Transfer::Current(soa) => std::slice::from_ref(&**soa),
        }
    }

    /// For logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Transfer::Refused => "refused",
            Transfer::Full(_) => "full",
            Transfer::Incremental(_) => "incremental",
            Transfer::Current(_) => "current",
        }
    }
}

/// The transfer `request` (from `client`, over `protocol`) asks for;
/// `None` when it is no transfer of a served zone's apex (answered as any
/// query: REFUSED, like a transfer over UDP that is not an IXFR).
pub fn transfer(
    snapshot: &Snapshot,
    request: &MessageRequest,
    client: IpAddr,
    protocol: Protocol,
) -> Option<Transfer> {
    if request.metadata.op_code != OpCode::Query {
        return None;
    }
    let [query] = request.queries.queries() else {
        return None;
    };
    let qtype = query.query_type();
    let udp = protocol == Protocol::Udp;
    if query.query_class() != DNSClass::IN
        || !matches!(qtype, RecordType::AXFR | RecordType::IXFR)
        || (udp && qtype == RecordType::AXFR)
    {
        return None;
    }
    let zone = snapshot.zone(query.name())?;
    if !zone.allows_transfer(client) {
        return Some(Transfer::Refused);
    }
    if qtype == RecordType::AXFR {
        return Some(Transfer::Full(full(zone)));
    }
    // RFC 1995 §2: the client's SOA is in the authority section.
    let asked = request
        .authorities
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        });
    Some(match asked {
        Some(serial) if serial == zone.serial || serial_greater(serial, zone.serial) => {
            Transfer::Current(Box::new(zone.soa().clone()))
        }
        // §2: an answer that does not fit UDP is the SOA; TCP follows.
        _ if udp => Transfer::Current(Box::new(zone.soa().clone())),
        Some(serial) => match snapshot.version(&LowerName::new(&zone.apex), serial) {
            Some(old) => Transfer::Incremental(incremental(old, zone)),
            None => Transfer::Full(full(zone)),
        },
        None => Transfer::Full(full(zone)),
    })
}

/// SOA, every record, SOA.
pub fn full(zone: &Zone) -> Vec<Record> {
    let mut records: Vec<Record> = zone.records().cloned().collect();
    records.push(zone.soa().clone());
    records
}

/// One difference from `old` to `new` (RFC 1995 §4).
pub fn incremental(old: &Zone, new: &Zone) -> Vec<Record> {
    let mut deleted = Vec::new();
    let mut added = Vec::new();
    let (before, after) = (&old.content().nodes, &new.content().nodes);
    for (owner, node) in before {
        match after.get(owner) {
            Some(now) if now == node => {}
            Some(now) => {
                let now: Vec<&Record> = now.records().collect();
                deleted.extend(node.records().filter(|r| !now.contains(r)).cloned());
            }
            None => deleted.extend(node.records().cloned()),
        }
    }
    for (owner, node) in after {
        match before.get(owner) {
            Some(then) if then == node => {}
            Some(then) => {
                let then: Vec<&Record> = then.records().collect();
                added.extend(node.records().filter(|r| !then.contains(r)).cloned());
            }
            None => added.extend(node.records().cloned()),
        }
    }
    let soa = new.soa().clone();
    let mut records = vec![soa.clone(), old.soa().clone()];
    records.extend(deleted);
    records.push(soa.clone());
    records.extend(added);
    records.push(soa);
    records
}

/// `records` cut into messages of at most `limit` bytes of records each
/// (uncompressed wire size; a record larger than `limit` goes alone).
pub fn messages(records: &[Record], limit: usize) -> Vec<&[Record]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (at, record) in records.iter().enumerate() {
        let bytes = wire_size(record);
        if at > start && size + bytes > limit {
            chunks.push(&records[start..at]);
            start = at;
            size = 0;
        }
        size += bytes;
    }
    if start < records.len() {
        chunks.push(&records[start..]);
    }
    chunks
}

/// The record's size on the wire without name compression.
fn wire_size(record: &Record) -> usize {
    // A record that does not encode is sent (and fails) alone.
    record
        .to_bytes()
        .map_or(usize::MAX / 2, |bytes| bytes.len())
}

#[cfg(test)]
mod tests;
