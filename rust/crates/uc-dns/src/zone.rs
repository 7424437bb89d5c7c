//! One served zone as queries see it: immutable, assembled from the store
//! (`build`), and looked up without touching the store. `lookup` follows
//! RFC 1034 §4.3.2 the way Knot does: delegations first, then the name
//! itself, empty non-terminals, the wildcard at the closest encloser, PTRs
//! generated from patterns, and otherwise NXDOMAIN.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use hickory_server::proto::rr::rdata::{PTR, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};

mod reverse;
pub use reverse::{reverse_prefix, Network, PtrPattern};

/// The records of one owner name, one RRset per type, in declaration order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    rrsets: Vec<(RecordType, Vec<Record>)>,
}

impl Node {
    pub fn push(&mut self, record: Record) {
        let kind = record.record_type();
        match self.rrsets.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, records)) => {
                if !records.iter().any(|r| r.data == record.data) {
                    records.push(record);
                }
            }
            None => self.rrsets.push((kind, vec![record])),
        }
    }

    pub fn rrset(&self, kind: RecordType) -> Option<&[Record]> {
        self.rrsets
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, records)| records.as_slice())
    }

    pub fn types(&self) -> impl Iterator<Item = RecordType> + '_ {
        self.rrsets.iter().map(|(kind, _)| *kind)
    }

    /// Drops the RRset of `kind`, giving its records back.
    pub fn remove(&mut self, kind: RecordType) -> Vec<Record> {
        match self.rrsets.iter().position(|(k, _)| *k == kind) {
            Some(at) => self.rrsets.remove(at).1,
            None => Vec::new(),
        }
    }

    pub fn record_count(&self) -> usize {
        self.rrsets.iter().map(|(_, records)| records.len()).sum()
    }

    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.rrsets.iter().flat_map(|(_, records)| records)
    }
}

/// What a zone holds, SOA aside: compared between reloads so that the
/// serial changes exactly when the content does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Content {
    pub nodes: HashMap<LowerName, Node>,
    pub ptr_patterns: Vec<PtrPattern>,
}

/// The SOA fields besides the serial (`cluster.dns.zones.<apex>.soa`).
#[derive(Debug, Clone, PartialEq)]
pub struct SoaFields {
    pub mname: Name,
    pub rname: Name,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// What a name holds in a zone, for one query type.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The RRsets answering the query (several for ANY).
    Found(Vec<Record>),
    /// The name is an alias; the query continues at the target.
    Alias(Record),
    /// The name exists but has no data of the type.
    NoData,
    NxDomain,
    /// The name is at or below a delegation: the child zone answers.
    Referral(LowerName),
}

/// Where a name sits in a zone (`Zone::locate`).
#[derive(Debug, Clone, PartialEq)]
pub enum Located<'a> {
    /// At or below this delegation point.
    Cut(LowerName),
    Node {
        node: &'a Node,
        apex: bool,
    },
    /// Exists only because names below it do.
    EmptyNonTerminal,
    /// Answered by the wildcard `wildcard` (`*.<closest encloser>`).
    Wildcard {
        wildcard: LowerName,
        node: &'a Node,
    },
    /// A PTR generated from a pattern, to this target.
    Generated(Name),
    /// Nothing; `encloser` is the closest existing ancestor.
    Absent {
        encloser: LowerName,
    },
}

/// A name the PTR patterns make.
enum Synthesised {
    Ptr(Name),
    NonTerminal,
}

#[derive(Debug)]
pub struct Zone {
    pub apex: Name,
    pub serial: u32,
    /// The default TTL: SOA's own and generated PTRs'.
    pub ttl: u32,
    pub spec_revision: i64,
    pub soa_fields: SoaFields,
    /// `secondaries` of the declaration: NOTIFY goes to each, and zone
    /// transfers are allowed from their addresses.
    pub secondaries: Vec<SocketAddr>,
    soa: Record,
    content: Content,
    empty_non_terminals: HashSet<LowerName>,
    /// Owners below the apex with NS records.
    cuts: HashSet<LowerName>,
}

/// Labels of `name`, a wildcard label counted (hickory's `num_labels` does not).
pub fn label_count(name: &Name) -> usize {
    name.iter().count()
}

impl Zone {
    pub fn new(
        apex: Name,
        ttl: u32,
        soa: &SoaFields,
        serial: u32,
        spec_revision: i64,
        content: Content,
    ) -> Zone {
        let apex_key = LowerName::new(&apex);
        let apex_labels = label_count(&apex);
        let mut empty_non_terminals = HashSet::new();
        let mut cuts = HashSet::new();
        for (owner, node) in &content.nodes {
            if *owner == apex_key {
                continue;
            }
            if node.rrset(RecordType::NS).is_some() {
                cuts.insert(owner.clone());
            }
            for labels in (apex_labels + 1)..label_count(owner) {
                let ancestor = LowerName::new(&owner.trim_to(labels));
                if !content.nodes.contains_key(&ancestor) {
                    empty_non_terminals.insert(ancestor);
                }
            }
        }
        let data = SOA::new(
            soa.mname.clone(),
            soa.rname.clone(),
            serial,
            clamp_i32(soa.refresh),
            clamp_i32(soa.retry),
            clamp_i32(soa.expire),
            soa.minimum,
        );
        Zone {
            soa: Record::from_rdata(apex.clone(), ttl, RData::SOA(data)),
            apex,
            serial,
            ttl,
            spec_revision,
            soa_fields: soa.clone(),
            secondaries: Vec::new(),
            content,
            empty_non_terminals,
            cuts,
        }
    }

    pub fn with_secondaries(mut self, secondaries: Vec<SocketAddr>) -> Zone {
        self.secondaries = secondaries;
        self
    }

    /// Whether `client` may transfer the zone: it is the address of one of
    /// its secondaries (IPv4-mapped IPv6 counts as IPv4).
    pub fn allows_transfer(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.secondaries
            .iter()
            .any(|secondary| secondary.ip().to_canonical() == client)
    }

    pub fn content(&self) -> &Content {
        &self.content
    }

    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// The SOA for a negative answer: its TTL is the negative-caching TTL,
    /// min(SOA TTL, SOA minimum) (RFC 2308 §3).
    pub fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        if let RData::SOA(data) = &soa.data {
            soa.ttl = soa.ttl.min(data.minimum);
        }
        soa
    }

    pub fn record_count(&self) -> usize {
        1 + self
            .content
            .nodes
            .values()
            .map(Node::record_count)
            .sum::<usize>()
    }

    /// Every record of the zone (SOA first), for diagnostics and tests.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        std::iter::once(&self.soa).chain(self.content.nodes.values().flat_map(Node::records))
    }

    /// The records `qname` has for `qtype` in this zone. `original` is the
    /// query's spelling, used as the owner of synthesised records.
    pub fn lookup(&self, qname: &LowerName, original: &Name, qtype: RecordType) -> Lookup {
        match self.locate(qname) {
            Located::Cut(cut) => {
                // DS belongs to the parent side of the cut: NODATA here.
                if cut == *qname && qtype == RecordType::DS {
                    return Lookup::NoData;
                }
                Lookup::Referral(cut)
            }
            Located::Node { node, apex } => self.select(node, qtype, None, apex),
            Located::EmptyNonTerminal => Lookup::NoData,
            Located::Wildcard { node, .. } => self.select(node, qtype, Some(original), false),
            Located::Generated(target) => match qtype {
                RecordType::PTR | RecordType::ANY => Lookup::Found(vec![Record::from_rdata(
                    original.clone(),
                    self.ttl,
                    RData::PTR(PTR(target)),
                )]),
                _ => Lookup::NoData,
            },
            Located::Absent { .. } => Lookup::NxDomain,
        }
    }

    /// What `qname` is in this zone, whatever the type asked (RFC 1034
    /// §4.3.2 as Knot does): delegations first, then the name itself, empty
    /// non-terminals, the wildcard at the closest encloser, PTRs generated
    /// from patterns. DNSSEC's denial of existence proves the same thing.
    pub fn locate(&self, qname: &LowerName) -> Located<'_> {
        let apex_labels = label_count(&self.apex);
        let qname_labels = label_count(qname);
        if !self.cuts.is_empty() {
            for labels in (apex_labels + 1)..=qname_labels {
                let ancestor = LowerName::new(&qname.trim_to(labels));
                if self.cuts.contains(&ancestor) {
                    return Located::Cut(ancestor);
                }
            }
        }
        if let Some(node) = self.content.nodes.get(qname) {
            let apex = qname_labels == apex_labels;
            return Located::Node { node, apex };
        }
        if self.empty_non_terminals.contains(qname) {
            return Located::EmptyNonTerminal;
        }
        // The wildcard of the closest encloser only (RFC 4592 §3.3.1).
        let mut encloser = LowerName::new(&self.apex);
        for labels in (apex_labels..qname_labels).rev() {
            let ancestor = LowerName::new(&qname.trim_to(labels));
            let exists = labels == apex_labels
                || self.content.nodes.contains_key(&ancestor)
                || self.empty_non_terminals.contains(&ancestor);
            if exists {
                let wildcard = ancestor.prepend_label("*").ok().map(LowerName::from);
                if let Some(wildcard) = wildcard {
                    if let Some(node) = self.content.nodes.get(&wildcard) {
                        return Located::Wildcard { wildcard, node };
                    }
                }
                encloser = ancestor;
                break;
            }
        }
        match self.synthesised(qname) {
            Some(Synthesised::Ptr(target)) => Located::Generated(target),
            Some(Synthesised::NonTerminal) => Located::EmptyNonTerminal,
            // The closest encloser may be a name the patterns make.
            None => Located::Absent {
                encloser: self
                    .synthesised_encloser(qname)
                    .filter(|made| label_count(made) > label_count(&encloser))
                    .unwrap_or(encloser),
            },
        }
    }

    /// The deepest ancestor of `qname` below the apex that the patterns make.
    fn synthesised_encloser(&self, qname: &LowerName) -> Option<LowerName> {
        if self.content.ptr_patterns.is_empty() {
            return None;
        }
        let apex_labels = label_count(&self.apex);
        ((apex_labels + 1)..label_count(qname))
            .rev()
            .map(|labels| LowerName::new(&qname.trim_to(labels)))
            .find(|ancestor| self.synthesised(ancestor).is_some())
    }

    /// A and AAAA records held at `name` in this zone (glue and additional
    /// data), below delegations too.
    pub fn addresses(&self, name: &Name) -> Vec<Record> {
        let Some(node) = self.content.nodes.get(&LowerName::new(name)) else {
            return Vec::new();
        };
        [RecordType::A, RecordType::AAAA]
            .into_iter()
            .filter_map(|kind| node.rrset(kind))
            .flatten()
            .cloned()
            .collect()
    }

    /// The NS records of a delegation point.
    pub fn delegation(&self, cut: &LowerName) -> Vec<Record> {
        self.content
            .nodes
            .get(cut)
            .and_then(|node| node.rrset(RecordType::NS))
            .map(<[Record]>::to_vec)
            .unwrap_or_default()
    }

    fn select(
        &self,
        node: &Node,
        qtype: RecordType,
        synthesised_owner: Option<&Name>,
        is_apex: bool,
    ) -> Lookup {
        let rename = |records: &[Record]| -> Vec<Record> {
            records
                .iter()
                .map(|record| match synthesised_owner {
                    Some(owner) => {
                        let mut record = record.clone();
                        record.name = owner.clone();
                        record
                    }
                    None => record.clone(),
                })
                .collect()
        };
        if qtype == RecordType::ANY {
            // One RRset, the lowest type, as Knot does (RFC 8482 §4.1).
            let soa = is_apex.then(|| (RecordType::SOA, std::slice::from_ref(&self.soa)));
            let rrsets = node
                .rrsets
                .iter()
                .map(|(kind, records)| (*kind, records.as_slice()));
            let lowest = rrsets.chain(soa).min_by_key(|(kind, _)| u16::from(*kind));
            return match lowest {
                Some((_, records)) => Lookup::Found(rename(records)),
                None => Lookup::NoData,
            };
        }
        if is_apex && qtype == RecordType::SOA {
            return Lookup::Found(vec![self.soa.clone()]);
        }
        if let Some(records) = node.rrset(qtype) {
            return Lookup::Found(rename(records));
        }
        if let Some(alias) = node.rrset(RecordType::CNAME).and_then(|r| rename(r).pop()) {
            return Lookup::Alias(alias);
        }
        Lookup::NoData
    }

    /// What the patterns make of `name`: a PTR to a target for an address
    /// in a network, an empty non-terminal for a shorter name on the way to
    /// one (as Knot's mod-synthrecord answers).
    fn synthesised(&self, name: &LowerName) -> Option<Synthesised> {
        if self.content.ptr_patterns.is_empty() {
            return None;
        }
        let prefix = reverse_prefix(name)?;
        let mut patterns = self.content.ptr_patterns.iter();
        match prefix.address() {
            Some(address) => patterns
                .find(|p| p.network.contains(address))
                .and_then(|p| p.target(address))
                .map(Synthesised::Ptr),
            None => patterns
                .any(|p| p.network.overlaps(&prefix))
                .then_some(Synthesised::NonTerminal),
        }
    }
}

fn clamp_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}
