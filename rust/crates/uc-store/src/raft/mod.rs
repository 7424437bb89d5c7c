//! Raft (openraft 0.9): the log and vote in redb, the state machine in
//! memory with snapshots on disk, the peer network over gRPC.

pub mod log_store;
pub mod network;
pub mod state_machine;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::state::{Applied, Command};

pub type NodeId = u64;

/// A member as etcd's MemberList shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = NodeId,
        Node = Member,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;

pub(crate) fn read_error(err: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::read(&err).into()
}

pub(crate) fn write_error(err: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::write(&err).into()
}
