//! How current a mirror is, for a daemon's /health and /metrics: whether
//! the watch on the store is up, when the store last answered, the last
//! error, and how far the store is ahead of what was applied.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// No answer from the store for this long (the probe runs every second)
/// counts as degraded even while the connection looks up.
pub const DEGRADED_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct MirrorStatus {
    started: Instant,
    /// Milliseconds after `started` of the last answer, plus one (0: never).
    last_contact: AtomicU64,
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// The store's revision at the last probe (0: not probed yet).
    store_revision: AtomicI64,
    /// The revision the mirror has applied up to.
    applied_revision: AtomicI64,
}

impl Default for MirrorStatus {
    fn default() -> MirrorStatus {
        MirrorStatus {
            started: Instant::now(),
            last_contact: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            last_error: Mutex::new(None),
            store_revision: AtomicI64::new(0),
            applied_revision: AtomicI64::new(0),
        }
    }
}

/// What /health reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Nothing read from the store yet.
    Starting,
    Ok,
    /// Serving the last published state; the store is not reachable.
    Degraded,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Ok => "ok",
            Health::Degraded => "degraded",
        }
    }
}

impl MirrorStatus {
    /// The store answered just now.
    pub fn contact(&self) {
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_contact
            .store(millis.saturating_add(1), Ordering::Relaxed);
    }

    /// The watch came up (clears the last error) or went down.
    pub fn connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
        if up {
            self.set_error(None);
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn set_error(&self, error: Option<String>) {
        match self.last_error.lock() {
            Ok(mut last) => *last = error,
            Err(poisoned) => *poisoned.into_inner() = error,
        }
    }

    pub fn last_error(&self) -> Option<String> {
        match self.last_error.lock() {
            Ok(last) => last.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Records a probe: the store is at `store_revision`, the mirror has
    /// applied up to `applied`.
    pub fn probed(&self, store_revision: i64, applied: i64) {
        self.store_revision.store(store_revision, Ordering::Relaxed);
        self.applied_revision.store(applied, Ordering::Relaxed);
    }

    /// The store's revision at the last probe (0 before the first).
    pub fn store_revision(&self) -> i64 {
        self.store_revision.load(Ordering::Relaxed)
    }

    /// Revisions the store was ahead of the mirror at the last probe.
    pub fn lag(&self) -> i64 {
        (self.store_revision() - self.applied_revision.load(Ordering::Relaxed)).max(0)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Time since the store last answered; `None` if it never did.
    pub fn since_contact(&self) -> Option<Duration> {
        match self.last_contact.load(Ordering::Relaxed) {
            0 => None,
            at => Some(
                self.started
                    .elapsed()
                    .saturating_sub(Duration::from_millis(at - 1)),
            ),
        }
    }

    /// `has_state`: something was published (the daemon serves it).
    pub fn health(&self, has_state: bool) -> Health {
        if !has_state {
            return Health::Starting;
        }
        let fresh = self.since_contact().is_some_and(|age| age < DEGRADED_AFTER);
        if self.is_connected() && fresh {
            Health::Ok
        } else {
            Health::Degraded
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_starting_then_degraded_until_connected_and_fresh() {
        let status = MirrorStatus::default();
        assert_eq!(status.health(false), Health::Starting);
        assert_eq!(status.health(true), Health::Degraded);
        assert_eq!(status.since_contact(), None);
        status.contact();
        assert_eq!(status.health(true), Health::Degraded, "contact, no watch");
        status.connected(true);
        assert_eq!(status.health(true), Health::Ok);
        assert_eq!(status.health(false), Health::Starting);
        status.connected(false);
        assert_eq!(status.health(true), Health::Degraded);
    }

    #[test]
    fn connecting_clears_the_last_error() {
        let status = MirrorStatus::default();
        status.set_error(Some("store down".into()));
        assert_eq!(status.last_error().as_deref(), Some("store down"));
        status.connected(false);
        assert_eq!(status.last_error().as_deref(), Some("store down"));
        status.connected(true);
        assert_eq!(status.last_error(), None);
    }

    #[test]
    fn lag_is_the_store_ahead_of_the_applied_revision_never_negative() {
        let status = MirrorStatus::default();
        assert_eq!((status.store_revision(), status.lag()), (0, 0));
        status.probed(12, 9);
        assert_eq!((status.store_revision(), status.lag()), (12, 3));
        status.probed(12, 14);
        assert_eq!(status.lag(), 0);
    }
}
