//! The zones being served, as one immutable value swapped whole on every
//! reload: a query reads the current `Arc<Snapshot>` and never waits for a
//! reload or the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hickory_server::proto::rr::LowerName;

use crate::zone::Zone;

#[derive(Debug, Default)]
pub struct Snapshot {
    zones: HashMap<LowerName, Arc<Zone>>,
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
            revision,
            generation,
        }
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
