//! What the state machine hands the state database: the changes of each
//! applied batch, in order, and the position after it.

use std::sync::Arc;

use openraft::{LogId, StoredMembership};
use serde::{Deserialize, Serialize};

use crate::raft::{Member, NodeId};
use crate::state::Changes;

/// What the state has applied, beside its records and leases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub revision: i64,
    pub compacted: i64,
    pub nospace: Vec<u64>,
    pub last_applied: Option<LogId<NodeId>>,
    pub last_membership: StoredMembership<NodeId, Member>,
}

impl Default for Position {
    /// An empty store, as etcd starts it: revision 1.
    fn default() -> Self {
        Position {
            revision: 1,
            compacted: 0,
            nospace: Vec::new(),
            last_applied: None,
            last_membership: StoredMembership::default(),
        }
    }
}

/// One change to the state, in the order the commands made them.
#[derive(Debug)]
pub enum Step {
    Changes(Arc<Changes>),
    Grant {
        id: i64,
        ttl: i64,
    },
    Revoke(i64),
    /// The revisions (main, sub) a compaction dropped.
    Compacted(Vec<(i64, i64)>),
}

/// What one `apply` call changed, and the position after it.
pub struct Batch {
    pub steps: Vec<Step>,
    pub position: Position,
}
