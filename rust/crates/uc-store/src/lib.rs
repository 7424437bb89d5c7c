//! uc-store: a Raft-replicated key-value store that speaks etcd's v3 API.
//!
//! - `mvcc`: the multi-version keyspace with etcd's revision semantics.
//! - `state`: the replicated state machine (keyspace, leases, alarms).
//! - `lease`: leases, and the leader's clock that expires them.
//! - `node`: one running member: proposing, forwarding, read barriers,
//!   membership.
//! - `raft`: openraft with the log and the state in redb, snapshots on disk.
//! - `restore`: a new member's data dir from a snapshot (uc-store's or etcd's).

pub mod api;
mod authority_fix;
pub mod errors;
pub mod http;
pub mod ids;
pub mod lease;
pub mod metrics;
pub mod mvcc;
pub mod node;
pub mod raft;
pub mod restore;
pub mod server;
pub mod state;
