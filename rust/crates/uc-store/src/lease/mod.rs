//! Leases. Granting and revoking one is a replicated command (`state`
//! applies it, deterministically, with the keys attached to it); when one
//! expires is not: the leader's clock decides (`clock`), and the leader
//! proposes the revoke (`node`'s leader duties). A follower asks the leader
//! for keep-alives and TTLs.

mod clock;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use clock::{Deadlines, LeaseClock};

/// etcd's MaxLeaseTTL.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// A granted lease, as the state machine keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: i64,
    /// Granted TTL in seconds.
    pub ttl: i64,
    pub keys: BTreeSet<Vec<u8>>,
}
