//! Builds each new snapshot from the store's state: parses a zone's
//! declaration only when it changed (logging the records it skips once),
//! resolves service records, and keeps a zone's serial unless its content
//! changed — then the serial becomes the store revision of the change, so
//! it only ever increases (also across restarts, as revisions do). The
//! versions a change replaces are kept (`HISTORY` per zone) for IXFR.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use hickory_server::proto::rr::{LowerName, Name};

use crate::build::{ParsedZone, ServiceEndpoints};
use crate::dnssec::Keyring;
use crate::snapshot::Snapshot;
use crate::store::StoreState;
use crate::zone::Zone;

/// Versions of a zone kept besides the current one, for IXFR: an IXFR from
/// an older serial gets the whole zone. Each version holds the zone's full
/// content, so memory is at most this many copies of each zone.
pub const HISTORY: usize = 8;

pub struct Catalog {
    /// Zones to serve (the config's `zones`); `None`: every declared zone.
    only: Option<BTreeSet<String>>,
    parsed: BTreeMap<String, Arc<ParsedZone>>,
    /// Declarations that could not be read, by mod revision (logged once).
    unreadable: BTreeMap<String, i64>,
    /// The last serial of every zone served since start, also of zones gone
    /// meanwhile: a zone that comes back (even from a store that lost its
    /// data and counts revisions from 1 again) never goes back in serial.
    serials: BTreeMap<String, u32>,
    /// Earlier versions of each zone, oldest first (IXFR's differences).
    history: BTreeMap<String, VecDeque<Arc<Zone>>>,
    /// Configured zones not in the store at the last reload (warned once).
    missing: BTreeSet<String>,
    /// Signing keys and signers of the zones declared signed.
    keyring: Keyring,
    generation: u64,
}

impl Catalog {
    pub fn new(only: Option<BTreeSet<String>>) -> Catalog {
        Catalog {
            only,
            parsed: BTreeMap::new(),
            unreadable: BTreeMap::new(),
            serials: BTreeMap::new(),
            history: BTreeMap::new(),
            missing: BTreeSet::new(),
            keyring: Keyring::default(),
            generation: 0,
        }
    }

    /// The snapshot for `state` at store `revision`, reusing what did not
    /// change since `previous`.
    pub fn reload(&mut self, state: &StoreState, previous: &Snapshot, revision: i64) -> Snapshot {
        self.generation += 1;
        let mut zones = Vec::new();
        let mut endpoints: BTreeMap<String, ServiceEndpoints> = BTreeMap::new();
        for (name, stored) in &state.zones {
            if self.only.as_ref().is_some_and(|only| !only.contains(name)) {
                continue;
            }
            let before = apex_key(name).and_then(|apex| previous.zone(&apex));
            let Some(parsed) = self.parsed(name, stored) else {
                // Like Knot on a failed reload: the zone keeps its last good version.
                zones.extend(before.cloned());
                continue;
            };
            let unchanged_spec = before.is_some_and(|z| z.spec_revision == parsed.spec_revision);
            if unchanged_spec && !parsed.has_service_records() {
                zones.extend(before.cloned());
                continue;
            }
            for service in parsed.services() {
                if !endpoints.contains_key(service) {
                    endpoints.insert(service.to_owned(), state.endpoints(service));
                }
            }
            let content = parsed.assemble(&endpoints);
            let same = before.filter(|z| {
                *z.content() == content && z.soa_fields == parsed.soa && z.ttl == parsed.ttl
            });
            let serial = match same {
                Some(zone) if zone.secondaries == parsed.secondaries => {
                    zones.push(zone.clone());
                    continue;
                }
                // Only the secondaries changed: same content, same serial.
                Some(zone) => zone.serial,
                None => {
                    let last = before.map(|z| z.serial).or(self.serials.get(name).copied());
                    let serial = next_serial(last, revision);
                    self.serials.insert(name.clone(), serial);
                    if let Some(old) = before {
                        self.remember(name, old.clone());
                    }
                    tracing::info!(zone = %name, serial, revision, "zone changed");
                    serial
                }
            };
            let zone = Zone::new(
                parsed.apex.clone(),
                parsed.ttl,
                &parsed.soa,
                serial,
                parsed.spec_revision,
                content,
            );
            zones.push(Arc::new(zone.with_secondaries(parsed.secondaries.clone())));
        }
        self.warn_missing(state);
        self.parsed.retain(|name, _| state.zones.contains_key(name));
        self.unreadable
            .retain(|name, _| state.zones.contains_key(name));
        self.history
            .retain(|name, _| state.zones.contains_key(name));
        let history = self
            .history
            .iter()
            .filter_map(|(name, versions)| {
                Some((apex_key(name)?, versions.iter().cloned().collect()))
            })
            .collect();
        let (signers, key_problems) = self.keyring.sign(&self.declared_signing(&zones));
        Snapshot::new(zones, revision, self.generation)
            .with_history(history)
            .with_dnssec(signers, key_problems)
    }

    /// Each served zone with its name and what its declaration says of DNSSEC.
    fn declared_signing(&self, zones: &[Arc<Zone>]) -> Vec<(String, Arc<Zone>, uc_types::Dnssec)> {
        self.parsed
            .iter()
            .filter_map(|(name, parsed)| {
                let apex = apex_key(name)?;
                let zone = zones
                    .iter()
                    .find(|zone| LowerName::new(&zone.apex) == apex)?;
                Some((name.clone(), zone.clone(), parsed.dnssec.clone()))
            })
            .collect()
    }

    /// Keeps `old`, a version just replaced, for IXFR: at most `HISTORY`
    /// versions of a zone, the oldest dropped first.
    fn remember(&mut self, name: &str, old: Arc<Zone>) {
        let versions = self.history.entry(name.to_owned()).or_default();
        versions.push_back(old);
        while versions.len() > HISTORY {
            versions.pop_front();
        }
    }

    /// Says once when a zone the config lists is not (or no longer) in the store.
    fn warn_missing(&mut self, state: &StoreState) {
        let Some(only) = &self.only else { return };
        let missing: BTreeSet<String> = only
            .iter()
            .filter(|zone| !state.zones.contains_key(*zone))
            .cloned()
            .collect();
        for zone in missing.difference(&self.missing) {
            tracing::warn!(%zone, "zone in the config but not in the store; REFUSED until the deployer writes it");
        }
        self.missing = missing;
    }

    /// The parsed declaration of zone `name`, parsed again only if its key
    /// changed; `None` if it cannot be read.
    fn parsed(&mut self, name: &str, stored: &crate::store::StoredZone) -> Option<Arc<ParsedZone>> {
        if let Some(parsed) = self.parsed.get(name) {
            if parsed.spec_revision == stored.mod_revision {
                return Some(parsed.clone());
            }
        }
        let spec = match &stored.spec {
            Ok(spec) => spec,
            Err(err) => {
                if self.unreadable.insert(name.to_owned(), stored.mod_revision)
                    != Some(stored.mod_revision)
                {
                    tracing::error!(zone = %name, %err, "cannot read the zone's declaration; serving its last good version, if any");
                }
                return None;
            }
        };
        match ParsedZone::parse(name, spec, stored.mod_revision) {
            Ok(parsed) => {
                for skipped in &parsed.skipped {
                    tracing::warn!(zone = %name, record = %skipped.record, reason = %skipped.reason, "record skipped");
                }
                let parsed = Arc::new(parsed);
                self.parsed.insert(name.to_owned(), parsed.clone());
                Some(parsed)
            }
            Err(err) => {
                if self.unreadable.insert(name.to_owned(), stored.mod_revision)
                    != Some(stored.mod_revision)
                {
                    tracing::error!(zone = %name, %err, "zone not served");
                }
                None
            }
        }
    }
}

/// The serial of a zone whose content changed at `revision`: the revision
/// (mod 2^32), or one more than before if that would not be greater in
/// serial-number arithmetic (RFC 1982).
pub fn next_serial(before: Option<u32>, revision: i64) -> u32 {
    let candidate = (revision as u64 & 0xffff_ffff) as u32;
    match before {
        Some(old) if !serial_greater(candidate, old) => old.wrapping_add(1),
        _ => candidate,
    }
}

/// Whether serial `a` is greater than `b` (RFC 1982).
pub fn serial_greater(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

/// The lookup key of the zone named `apex` (without the trailing dot).
fn apex_key(apex: &str) -> Option<LowerName> {
    Name::from_ascii(format!("{}.", apex.trim_end_matches('.')))
        .ok()
        .map(|name| LowerName::new(&name))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::fixture;
    use uc_types::keys;

    fn put_zone(state: &mut StoreState, zone: &uc_types::Zone, revision: i64) {
        let value = serde_json::to_vec(zone).unwrap();
        state.apply(&keys::dns_zone("example.test"), Some(&value), revision);
    }

    fn serial(snapshot: &Snapshot) -> u32 {
        snapshot.zones().next().unwrap().serial
    }

    #[test]
    fn the_serial_moves_with_the_content_only() {
        let mut catalog = Catalog::new(None);
        let mut state = StoreState::default();
        put_zone(&mut state, &fixture::example_zone(), 5);
        let first = catalog.reload(&state, &Snapshot::default(), 9);
        assert_eq!(serial(&first), 9);
        // Another key changed: same content, same serial, same zone.
        let second = catalog.reload(&state, &first, 12);
        assert_eq!(serial(&second), 9);
        // The declaration changed: the serial becomes the revision.
        let mut changed = fixture::example_zone();
        changed.records.pop();
        put_zone(&mut state, &changed, 14);
        let third = catalog.reload(&state, &second, 14);
        assert_eq!(serial(&third), 14);
        assert_eq!(third.generation, 3);
        // Gone, then back from a store whose revisions started over.
        state.apply(&keys::dns_zone("example.test"), None, 15);
        let gone = catalog.reload(&state, &third, 15);
        assert_eq!(gone.zones().count(), 0);
        let mut fresh = StoreState::default();
        put_zone(&mut fresh, &fixture::example_zone(), 2);
        assert_eq!(serial(&catalog.reload(&fresh, &gone, 3)), 15);
    }

    #[test]
    fn an_unreadable_declaration_keeps_the_last_good_zone() {
        let mut catalog = Catalog::new(None);
        let mut state = StoreState::default();
        put_zone(&mut state, &fixture::example_zone(), 5);
        let good = catalog.reload(&state, &Snapshot::default(), 5);
        state.apply(&keys::dns_zone("example.test"), Some(b"{not json"), 6);
        let after = catalog.reload(&state, &good, 6);
        assert_eq!(serial(&after), 5);
        state.apply(&keys::dns_zone("example.test"), None, 7);
        assert_eq!(catalog.reload(&state, &after, 7).zones().count(), 0);
    }

    #[test]
    fn only_the_configured_zones_are_served() {
        let mut catalog = Catalog::new(Some(BTreeSet::from(["other.test".to_owned()])));
        let mut state = StoreState::default();
        put_zone(&mut state, &fixture::example_zone(), 5);
        assert_eq!(
            catalog
                .reload(&state, &Snapshot::default(), 5)
                .zones()
                .count(),
            0
        );
    }

    #[test]
    fn replaced_versions_are_kept_for_ixfr_up_to_history() {
        let mut catalog = Catalog::new(None);
        let mut state = StoreState::default();
        let apex = apex_key("example.test").unwrap();
        let mut snapshot = Snapshot::default();
        let mut spec = fixture::example_zone();
        for revision in 1..=(HISTORY as i64 + 3) {
            spec.ttl = 100 + revision as u32;
            put_zone(&mut state, &spec, revision);
            snapshot = catalog.reload(&state, &snapshot, revision);
        }
        let last = HISTORY as u32 + 3;
        assert_eq!(serial(&snapshot), last);
        // The current version and the HISTORY before it; older ones are gone.
        for kept in (last - HISTORY as u32)..=last {
            assert_eq!(snapshot.version(&apex, kept).unwrap().serial, kept);
        }
        assert!(snapshot.version(&apex, last - HISTORY as u32 - 1).is_none());
        // A zone deleted loses its history.
        state.apply(&keys::dns_zone("example.test"), None, 20);
        let gone = catalog.reload(&state, &snapshot, 20);
        put_zone(&mut state, &spec, 21);
        let back = catalog.reload(&state, &gone, 21);
        assert!(back.version(&apex, last).is_none());
    }

    #[test]
    fn new_secondaries_alone_keep_the_serial() {
        let mut catalog = Catalog::new(None);
        let mut state = StoreState::default();
        let mut spec = fixture::example_zone();
        put_zone(&mut state, &spec, 5);
        let first = catalog.reload(&state, &Snapshot::default(), 5);
        spec.secondaries = vec![uc_types::Secondary {
            address: "192.0.2.53".parse().unwrap(),
            port: 53,
        }];
        put_zone(&mut state, &spec, 6);
        let second = catalog.reload(&state, &first, 6);
        let zone = second.zones().next().unwrap();
        assert_eq!(zone.serial, 5);
        assert_eq!(zone.secondaries, ["192.0.2.53:53".parse().unwrap()]);
        assert!(zone.allows_transfer("192.0.2.53".parse().unwrap()));
        assert!(!zone.allows_transfer("192.0.2.54".parse().unwrap()));
    }

    #[test]
    fn serials_increase_in_serial_arithmetic() {
        assert_eq!(next_serial(None, 7), 7);
        assert_eq!(next_serial(Some(7), 9), 9);
        assert_eq!(next_serial(Some(9), 9), 10);
        assert_eq!(next_serial(Some(u32::MAX), 1 << 32), 0);
    }
}
