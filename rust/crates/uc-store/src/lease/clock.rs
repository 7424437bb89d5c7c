//! The lease clock: each lease's deadline by this member's clock. Not
//! replicated: the leader's decides (a new leader gives every lease a fresh
//! TTL, as etcd does); a follower's only tracks grants and revokes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct LeaseClock {
    deadlines: Mutex<HashMap<i64, Instant>>,
}

/// The deadlines, locked: applying a batch notes its grants and revokes
/// under one lock.
pub struct Deadlines<'a>(MutexGuard<'a, HashMap<i64, Instant>>);

impl Deadlines<'_> {
    pub fn granted(&mut self, id: i64, ttl: i64, now: Instant) {
        self.0.insert(id, now + ttl_duration(ttl));
    }

    pub fn revoked(&mut self, id: i64) {
        self.0.remove(&id);
    }
}

impl LeaseClock {
    pub fn lock(&self) -> Deadlines<'_> {
        Deadlines(self.deadlines.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Gives every lease a fresh TTL from now (a new leader does this, as etcd).
    /// `leases`: each one's id and TTL.
    pub fn refresh(&self, leases: impl IntoIterator<Item = (i64, i64)>) {
        let now = Instant::now();
        let mut deadlines = self.lock();
        deadlines.0.clear();
        for (id, ttl) in leases {
            deadlines.0.insert(id, now + ttl_duration(ttl));
        }
    }

    /// Extends a lease of `ttl` seconds from now (a keep-alive).
    pub fn extend(&self, id: i64, ttl: i64) {
        self.lock().0.insert(id, Instant::now() + ttl_duration(ttl));
    }

    /// Seconds left on lease `id` by this clock (`ttl` if it has no
    /// deadline).
    pub fn remaining(&self, id: i64, ttl: i64) -> i64 {
        let left = self
            .lock()
            .0
            .get(&id)
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(ttl_duration(ttl));
        left.as_secs_f64().ceil() as i64
    }

    /// Leases whose deadline passed.
    pub fn expired(&self) -> Vec<i64> {
        let now = Instant::now();
        let mut ids: Vec<i64> = self
            .lock()
            .0
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}
