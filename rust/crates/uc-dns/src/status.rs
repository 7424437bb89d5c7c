//! How current the served snapshot is, for /health and /metrics: whether
//! the watch on the store is up and when the store last answered.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// No answer from the store for this long (the probe runs every second)
/// counts as degraded even while the connection looks up.
pub const DEGRADED_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct SyncStatus {
    started: Instant,
    /// Milliseconds after `started` of the last answer, plus one (0: never).
    last_contact: AtomicU64,
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Default for SyncStatus {
    fn default() -> SyncStatus {
        SyncStatus {
            started: Instant::now(),
            last_contact: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }
}

/// What /health reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Nothing read from the store yet: every query is REFUSED.
    Starting,
    Ok,
    /// Answering from the last snapshot; the store is not reachable.
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

impl SyncStatus {
    /// The store answered just now.
    pub fn contact(&self) {
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_contact
            .store(millis.saturating_add(1), Ordering::Relaxed);
    }

    pub fn connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
        if up {
            self.set_error(None);
        }
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

    pub fn health(&self, has_snapshot: bool) -> Health {
        if !has_snapshot {
            return Health::Starting;
        }
        let fresh = self.since_contact().is_some_and(|age| age < DEGRADED_AFTER);
        if self.connected.load(Ordering::Relaxed) && fresh {
            Health::Ok
        } else {
            Health::Degraded
        }
    }
}
