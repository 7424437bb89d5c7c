//! The zones being served, as one immutable value swapped whole on every
//! reload: a query reads the current `Arc<Snapshot>` and never waits for a
//! reload or the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hickory_server::proto::rr::LowerName;

use crate::dnssec::{KeyProblem, ZoneSigner};
use crate::zone::Zone;

#[derive(Debug, Default)]
pub struct Snapshot {
    zones: HashMap<LowerName, Arc<Zone>>,
    /// Earlier versions of each zone, oldest first, for IXFR (bounded by
    /// the catalog).
    history: HashMap<LowerName, Vec<Arc<Zone>>>,
    /// The signers of the zones served signed, by apex.
    signers: HashMap<LowerName, Arc<ZoneSigner>>,
    /// Zones declared signed but served unsigned, and why.
    pub key_problems: Vec<KeyProblem>,
    /// The store revision the snapshot was built from (0: nothing read yet).
    pub revision: i64,
    /// Counts reloads since start.
    pub generation: u64,
}

impl Snapshot {
    pub fn new(zones: Vec<Arc<Zone>>, revision: i64, generation: u64) -> Snapshot {
        Snapshot {
            zones: zones
                .into_iter()
                .map(|zone| (LowerName::new(&zone.apex), zone))
                .collect(),
            history: HashMap::new(),
            signers: HashMap::new(),
            key_problems: Vec::new(),
            revision,
            generation,
        }
    }

    /// The snapshot with `history`: earlier versions of zones, by apex.
    pub fn with_history(mut self, history: HashMap<LowerName, Vec<Arc<Zone>>>) -> Snapshot {
        self.history = history;
        self
    }

    /// The snapshot with DNSSEC: `signers` of the zones served signed, and
    /// the zones that should be but whose key could not be read.
    pub fn with_dnssec(
        mut self,
        signers: Vec<Arc<ZoneSigner>>,
        key_problems: Vec<KeyProblem>,
    ) -> Snapshot {
        self.signers = signers
            .into_iter()
            .map(|signer| (LowerName::new(&signer.apex), signer))
            .collect();
        self.key_problems = key_problems;
        self
    }

    /// The signer of zone `apex`, when it is served signed.
    pub fn signer(&self, apex: &LowerName) -> Option<&Arc<ZoneSigner>> {
        self.signers.get(apex)
    }

    pub fn signers(&self) -> impl Iterator<Item = &Arc<ZoneSigner>> {
        self.signers.values()
    }

    /// The version of zone `apex` that had `serial`, current or kept.
    pub fn version(&self, apex: &LowerName, serial: u32) -> Option<&Arc<Zone>> {
        let current = self.zones.get(apex).filter(|zone| zone.serial == serial);
        current.or_else(|| {
            self.history
                .get(apex)?
                .iter()
                .rev()
                .find(|zone| zone.serial == serial)
        })
    }

    /// The zone `name` belongs to: the served apex nearest to it.
    pub fn find_zone(&self, name: &LowerName) -> Option<&Zone> {
        let mut candidate = name.clone();
        loop {
            if let Some(zone) = self.zones.get(&candidate) {
                return Some(zone);
            }
            if candidate.is_root() {
                return None;
            }
            candidate = candidate.base_name();
        }
    }

    pub fn zone(&self, apex: &LowerName) -> Option<&Arc<Zone>> {
        self.zones.get(apex)
    }

    pub fn zones(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.values()
    }
}

/// The snapshot queries read; replaced, never changed in place.
#[derive(Debug, Default)]
pub struct Published(RwLock<Arc<Snapshot>>);

impl Published {
    /// The current snapshot (the lock is held only to clone the `Arc`).
    pub fn load(&self) -> Arc<Snapshot> {
        match self.0.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn store(&self, snapshot: Arc<Snapshot>) {
        match self.0.write() {
            Ok(mut current) => *current = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }
}
