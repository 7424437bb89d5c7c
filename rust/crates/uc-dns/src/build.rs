//! From a zone as declared (`uc_types::Zone`, the value under
//! `/uc/v1/dns/zones/<apex>`) to the records served. `ParsedZone::parse`
//! runs once per change of the declaration and keeps what is static; bad
//! records are skipped with the reason (the rest of the zone still serves).
//! `assemble` adds what `service` records resolve to now, on every reload.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use hickory_server::proto::rr::rdata::{A, AAAA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use uc_types::Transport;

use crate::records::{owner_name, parse_value, wire_type};
use crate::zone::{Content, Network, Node, PtrPattern, SoaFields};

/// A record of the declaration that is not served, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `records[3] www A`, `ptrPatterns[0]`, `nameservers[1]`.
    pub record: String,
    pub reason: String,
}

/// Where a service runs now: addresses of nodes with a healthy instance,
/// and its named ports (for `_<port>._<proto>.<name>` SRV records).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEndpoints {
    pub addresses: Vec<IpAddr>,
    pub ports: Vec<NamedPort>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    pub name: String,
    pub protocol: Transport,
    pub port: u16,
}

/// A record answered from a service's healthy instances.
#[derive(Debug, Clone)]
struct ServiceRecord {
    owner: Name,
    kind: RecordType,
    ttl: u32,
    service: String,
}

/// The static part of a zone, parsed from its declaration.
#[derive(Debug)]
pub struct ParsedZone {
    pub apex: Name,
    pub ttl: u32,
    pub soa: SoaFields,
    /// Mod revision of the declaration's key.
    pub spec_revision: i64,
    nodes: HashMap<LowerName, Node>,
    service_records: Vec<ServiceRecord>,
    ptr_patterns: Vec<PtrPattern>,
    /// Where NOTIFY goes; transfers are allowed from these addresses.
    pub secondaries: Vec<SocketAddr>,
    /// Whether and with which key the zone is signed.
    pub dnssec: uc_types::Dnssec,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("{apex:?} is not a valid zone name: {reason}")]
    Apex { apex: String, reason: String },
}

impl ParsedZone {
    pub fn parse(
        apex: &str,
        spec: &uc_types::Zone,
        spec_revision: i64,
    ) -> Result<ParsedZone, ZoneError> {
        let apex_name =
            Name::from_ascii(format!("{}.", apex.trim_end_matches('.'))).map_err(|err| {
                ZoneError::Apex {
                    apex: apex.to_owned(),
                    reason: err.to_string(),
                }
            })?;
        let mut zone = ParsedZone {
            soa: SoaFields {
                mname: apex_name.clone(),
                rname: apex_name.clone(),
                refresh: spec.soa.refresh,
                retry: spec.soa.retry,
                expire: spec.soa.expire,
                minimum: spec.soa.minimum,
            },
            apex: apex_name.clone(),
            ttl: spec.ttl,
            spec_revision,
            nodes: HashMap::new(),
            service_records: Vec::new(),
            ptr_patterns: Vec::new(),
            secondaries: spec
                .secondaries
                .iter()
                .map(|s| SocketAddr::new(s.address, s.port))
                .collect(),
            dnssec: spec.dnssec.clone(),
            skipped: Vec::new(),
        };
        zone.nodes
            .insert(LowerName::new(&apex_name), Node::default());
        match Name::from_ascii(format!("{}.", spec.soa.email.trim_end_matches('.'))) {
            Ok(rname) => zone.soa.rname = rname,
            Err(err) => zone.skip("soa.email", err.to_string()),
        }
        for (index, nameserver) in spec.nameservers.iter().enumerate() {
            match parse_value(RecordType::NS, nameserver, &apex_name) {
                Ok(data) => {
                    if index == 0 {
                        if let RData::NS(ns) = &data {
                            zone.soa.mname = ns.0.clone();
                        }
                    }
                    zone.add(Record::from_rdata(apex_name.clone(), spec.ttl, data));
                }
                Err(err) => zone.skip(&format!("nameservers[{index}]"), err.to_string()),
            }
        }
        for (index, record) in spec.records.iter().enumerate() {
            let label = format!("records[{index}] {} {:?}", record.name, record.kind);
            zone.add_declared(record, &label);
        }
        for (index, pattern) in spec.ptr_patterns.iter().enumerate() {
            match parse_ptr_pattern(pattern) {
                Ok(parsed) => zone.ptr_patterns.push(parsed),
                Err(reason) => zone.skip(&format!("ptrPatterns[{index}]"), reason.to_string()),
            }
        }
        zone.drop_conflicting_aliases();
        Ok(zone)
    }

    /// The zone's content with `service` records resolved through
    /// `endpoints` (service name to where it runs now).
    pub fn assemble(&self, endpoints: &BTreeMap<String, ServiceEndpoints>) -> Content {
        let mut nodes = self.nodes.clone();
        for record in &self.service_records {
            let Some(service) = endpoints.get(&record.service) else {
                continue;
            };
            let addresses: Vec<RData> = service
                .addresses
                .iter()
                .filter_map(|address| match (record.kind, address) {
                    (RecordType::A, IpAddr::V4(v4)) => Some(RData::A(A(*v4))),
                    (RecordType::AAAA, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(*v6))),
                    _ => None,
                })
                .collect();
            if addresses.is_empty() {
                continue;
            }
            let node = nodes.entry(LowerName::new(&record.owner)).or_default();
            for data in addresses {
                node.push(Record::from_rdata(record.owner.clone(), record.ttl, data));
            }
            for port in &service.ports {
                let Some(owner) = srv_owner(&record.owner, port) else {
                    continue;
                };
                let key = LowerName::new(&owner);
                // Declared SRV records of that name win over generated ones.
                if self.nodes.contains_key(&key) {
                    continue;
                }
                let data = SRV::new(0, 0, port.port, record.owner.clone());
                nodes.entry(key).or_default().push(Record::from_rdata(
                    owner,
                    record.ttl,
                    RData::SRV(data),
                ));
            }
        }
        Content {
            nodes,
            ptr_patterns: self.ptr_patterns.clone(),
        }
    }

    /// Whether a reload must look at services (the zone has `service` records).
    pub fn has_service_records(&self) -> bool {
        !self.service_records.is_empty()
    }

    /// Services whose records this zone answers.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.service_records.iter().map(|r| r.service.as_str())
    }

    /// Adds a declared record, skipping what of it cannot be served.
    fn add_declared(&mut self, record: &uc_types::Record, label: &str) {
        let owner = match owner_name(&record.name, &self.apex) {
            Ok(owner) => owner,
            Err(err) => return self.skip(label, err.to_string()),
        };
        let kind = wire_type(record.kind);
        if let Some(service) = &record.service {
            // The name exists even while no instance is healthy (NODATA, not NXDOMAIN).
            self.nodes.entry(LowerName::new(&owner)).or_default();
            self.service_records.push(ServiceRecord {
                owner,
                kind,
                ttl: record.ttl,
                service: service.clone(),
            });
            return;
        }
        for value in &record.values {
            match parse_value(kind, value, &self.apex) {
                Ok(data) => self.add(Record::from_rdata(owner.clone(), record.ttl, data)),
                Err(err) => self.skip(label, err.to_string()),
            }
        }
    }

    fn add(&mut self, record: Record) {
        self.nodes
            .entry(LowerName::new(&record.name))
            .or_default()
            .push(record);
    }

    /// A CNAME must be alone at its name (RFC 1034 §3.6.2) and single: the
    /// other data stays, the CNAME goes.
    fn drop_conflicting_aliases(&mut self) {
        let service_owners: Vec<LowerName> = self
            .service_records
            .iter()
            .map(|r| LowerName::new(&r.owner))
            .collect();
        let apex = LowerName::new(&self.apex);
        let mut skipped = Vec::new();
        for (owner, node) in &mut self.nodes {
            if node.rrset(RecordType::CNAME).is_none() {
                continue;
            }
            let others: Vec<String> = node
                .types()
                .filter(|kind| *kind != RecordType::CNAME)
                .map(|kind| kind.to_string())
                .collect();
            let beside_service = service_owners.contains(owner);
            if !others.is_empty() || beside_service || *owner == apex {
                let what = if *owner == apex {
                    "at the apex (beside SOA)".to_owned()
                } else if beside_service {
                    "beside a service record".to_owned()
                } else {
                    format!("beside other data ({})", others.join(", "))
                };
                for alias in node.remove(RecordType::CNAME) {
                    skipped.push(Skipped {
                        record: format!("{owner} CNAME {}", alias.data),
                        reason: format!("CNAME {what}"),
                    });
                }
                continue;
            }
            let mut aliases = node.remove(RecordType::CNAME);
            let extra = aliases.split_off(1.min(aliases.len()));
            for alias in aliases {
                node.push(alias);
            }
            for alias in extra {
                skipped.push(Skipped {
                    record: format!("{owner} CNAME {}", alias.data),
                    reason: "more than one CNAME at one name; the first is kept".to_owned(),
                });
            }
        }
        self.skipped.extend(skipped);
    }

    fn skip(&mut self, record: &str, reason: String) {
        self.skipped.push(Skipped {
            record: record.to_owned(),
            reason,
        });
    }
}

/// `_<port>._<tcp|udp>.<owner>`.
fn srv_owner(owner: &Name, port: &NamedPort) -> Option<Name> {
    let protocol = match port.protocol {
        Transport::Tcp => "_tcp",
        Transport::Udp => "_udp",
    };
    owner
        .prepend_label(protocol)
        .and_then(|name| name.prepend_label(format!("_{}", port.name).as_str()))
        .ok()
}

/// Why a `ptrPatterns` entry is skipped.
#[derive(Debug, thiserror::Error)]
enum PtrPatternError {
    #[error("network {0:?} is not <address>/<prefix>")]
    NotCidr(String),
    #[error("network {0:?}: not an IPv4 or IPv6 address")]
    BadAddress(String),
    #[error("network {0:?}: bad prefix length")]
    BadPrefix(String),
    #[error(
        "pattern {pattern:?}: {placeholder} is not a placeholder for addresses of {network:?}"
    )]
    ForeignPlaceholder {
        pattern: String,
        placeholder: &'static str,
        network: String,
    },
    #[error("pattern {0:?} does not make a valid name")]
    BadName(String),
}

fn parse_ptr_pattern(pattern: &uc_types::PtrPattern) -> Result<PtrPattern, PtrPatternError> {
    let network = || pattern.network.clone();
    let (base, prefix) = pattern
        .network
        .split_once('/')
        .ok_or_else(|| PtrPatternError::NotCidr(network()))?;
    let base: std::net::IpAddr = base
        .parse()
        .map_err(|_| PtrPatternError::BadAddress(network()))?;
    let width = if base.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= width)
        .ok_or_else(|| PtrPatternError::BadPrefix(network()))?;
    // Patterns name hosts anywhere, so they are absolute even without the dot.
    let absolute = format!("{}.", pattern.pattern.trim_end_matches('.'));
    let parsed = PtrPattern {
        network: Network { base, prefix },
        pattern: absolute,
    };
    if let Some(placeholder) = parsed.foreign_placeholder() {
        return Err(PtrPatternError::ForeignPlaceholder {
            pattern: pattern.pattern.clone(),
            placeholder,
            network: network(),
        });
    }
    if parsed.target(base).is_none() {
        return Err(PtrPatternError::BadName(pattern.pattern.clone()));
    }
    Ok(parsed)
}
