//! Signatures of one zone version. Every RRset a zone holds is signed once,
//! the first time an answer needs it, and the RRSIG is kept until the zone
//! changes (a new version gets a new `ZoneSigner`) or half its validity has
//! passed. RRsets made per query (PTRs from patterns, NSEC "white lies")
//! are signed each time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::dnssec::rdata::sig::SigInput;
use hickory_proto::dnssec::rdata::{DNSSECRData, RRSIG};
use hickory_proto::dnssec::{Algorithm, TBS};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType, SerialNumber};

use super::key::ZoneKey;

/// Inception this far back, for resolvers whose clocks are behind.
pub const INCEPTION_BACKDATE_SECS: u32 = 3600;
/// Signatures are valid this long after inception (Knot's default RRSIG
/// lifetime): long enough to ride out a week-long outage of the signer's
/// host without resolvers seeing expired signatures from caches.
pub const VALIDITY_SECS: u32 = 14 * 86_400;
/// A kept signature with less than this left is made again.
pub const RENEW_BEFORE_SECS: u32 = 7 * 86_400;

/// The seconds since the epoch in RRSIG's 32-bit field (RFC 4034 §3.1.5:
/// serial-number arithmetic, so the wrap in 2106 is harmless).
pub fn now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    (secs & 0xffff_ffff) as u32
}

/// The signing side of one zone version.
#[derive(Debug)]
pub struct ZoneSigner {
    pub apex: Name,
    pub key: Arc<ZoneKey>,
    /// The zone's serial when made: a new version gets a new signer.
    pub serial: u32,
    dnskey: Record,
    /// RRSIGs made for this version, by the RRset's owner in the zone (a
    /// wildcard's own name for synthesised answers) and type covered.
    kept: RwLock<HashMap<(LowerName, RecordType), Record>>,
}

impl ZoneSigner {
    pub fn new(apex: Name, key: Arc<ZoneKey>, serial: u32, ttl: u32) -> ZoneSigner {
        let data = RData::DNSSEC(DNSSECRData::DNSKEY(key.dnskey.clone()));
        ZoneSigner {
            dnskey: Record::from_rdata(apex.clone(), ttl, data),
            apex,
            key,
            serial,
            kept: RwLock::new(HashMap::new()),
        }
    }

    /// The DNSKEY RRset at the apex (one key).
    pub fn dnskey(&self) -> &Record {
        &self.dnskey
    }

    /// RRSIGs kept so far (for tests and metrics).
    pub fn kept_count(&self) -> usize {
        self.kept.read().map_or(0, |kept| kept.len())
    }

    /// The RRSIG of `rrset` (records of one owner and type), signed as the
    /// zone holds it under `zone_owner` (the wildcard for a synthesised
    /// answer) with `original_ttl`; kept for later answers.
    pub fn sign_kept(
        &self,
        zone_owner: &LowerName,
        rrset: &[Record],
        original_ttl: u32,
        now: u32,
    ) -> Option<Record> {
        let first = rrset.first()?;
        let key = (zone_owner.clone(), first.record_type());
        let fresh = |rrsig: &Record| match &rrsig.data {
            RData::DNSSEC(DNSSECRData::RRSIG(sig)) => {
                sig.input().sig_expiration.get().wrapping_sub(now) > RENEW_BEFORE_SECS
            }
            _ => false,
        };
        let kept = self
            .kept
            .read()
            .ok()
            .and_then(|kept| kept.get(&key).filter(|rrsig| fresh(rrsig)).cloned());
        let mut rrsig = match kept {
            Some(rrsig) => rrsig,
            None => {
                let labels = Name::from(zone_owner).num_labels();
                let rrsig = self.sign_as(rrset, labels, original_ttl, now)?;
                if let Ok(mut kept) = self.kept.write() {
                    kept.insert(key, rrsig.clone());
                }
                rrsig
            }
        };
        rrsig.name = first.name.clone();
        rrsig.ttl = first.ttl;
        Some(rrsig)
    }

    /// The RRSIG of `rrset`, made now and not kept.
    pub fn sign(&self, rrset: &[Record], now: u32) -> Option<Record> {
        let first = rrset.first()?;
        self.sign_as(rrset, first.name.num_labels(), first.ttl, now)
    }

    /// Signs `rrset` with the RRSIG labels field `labels` (fewer than the
    /// owner has: a wildcard expansion, RFC 4035 §5.3.2).
    fn sign_as(&self, rrset: &[Record], labels: u8, original_ttl: u32, now: u32) -> Option<Record> {
        let first = rrset.first()?;
        let inception = now.wrapping_sub(INCEPTION_BACKDATE_SECS);
        let input = SigInput {
            type_covered: first.record_type(),
            algorithm: Algorithm::ECDSAP256SHA256,
            num_labels: labels,
            original_ttl,
            sig_expiration: SerialNumber::new(inception.wrapping_add(VALIDITY_SECS)),
            sig_inception: SerialNumber::new(inception),
            key_tag: self.key.key_tag,
            signer_name: self.apex.clone(),
        };
        let tbs = TBS::from_input(&first.name, DNSClass::IN, &input, rrset.iter()).ok()?;
        let signature = self.key.sign(&tbs)?;
        let data = RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, signature)));
        Some(Record::from_rdata(first.name.clone(), first.ttl, data))
    }
}
