//! `uc dns` and `uc dns records ZONE`: the zones in the store with their
//! record counts and servers, and one zone's records, from the deployer's
//! `GET /api/v1/dns` and `GET /api/v1/dns/zones/<apex>`.

use std::fmt::Write;

use uc_types::{DnsView, DnsZoneRecords};

use crate::table;

/// One line per zone, then zones whose declaration does not parse.
pub fn zones(view: &DnsView) -> String {
    if view.zones.is_empty() {
        return "no zones\n".to_owned();
    }
    let mut rows = vec![table::header(&[
        "ZONE",
        "REVISION",
        "RECORDS",
        "PTR PATTERNS",
        "SECONDARIES",
        "SERVED BY",
        "SERVING NOW",
    ])];
    let mut problems = Vec::new();
    for (apex, zone) in &view.zones {
        rows.push(vec![
            apex.clone(),
            zone.revision.to_string(),
            zone.records.to_string(),
            zone.ptr_patterns.to_string(),
            zone.secondaries_text(),
            zone.servers_text(),
            printable(&zone.serving_text()),
        ]);
        if let Some(error) = &zone.error {
            problems.push(format!("{apex}: {error}"));
        }
    }
    let mut out = table::render(&rows);
    let _ = writeln!(
        out,
        "\nREVISION: the store revision of the zone's declaration; each uc-dns' SOA serial is \
         this or later (`dig @SERVER ZONE SOA`).\n\
         SERVING NOW: each server's own report (serial and health), or \"no report\" when it \
         has none in the store (not running)."
    );
    for problem in problems {
        let _ = writeln!(out, "{problem}");
    }
    out
}

/// `text` with control characters escaped (`\u{1b}`): a report's error
/// comes from a store value and must not drive the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// One line per declared record, then the PTR patterns.
pub fn records(zone: &DnsZoneRecords) -> String {
    let mut rows = vec![table::header(&["NAME", "TYPE", "TTL", "VALUES"])];
    for record in &zone.records {
        let values = match &record.service {
            Some(service) => format!("(healthy instances of service {service})"),
            None => record.values.join(", "),
        };
        rows.push(vec![
            record.name.clone(),
            format!("{:?}", record.kind).to_uppercase(),
            record.ttl.to_string(),
            values,
        ]);
    }
    let mut out = format!(
        "zone {} (declared at store revision {})\n",
        zone.apex, zone.revision
    );
    out.push_str(&table::render(&rows));
    for pattern in &zone.ptr_patterns {
        let _ = writeln!(
            out,
            "PTR pattern: {} -> {}",
            pattern.network, pattern.pattern
        );
    }
    out
}
