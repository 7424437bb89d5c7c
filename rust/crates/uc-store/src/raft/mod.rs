//! Raft (openraft 0.9): the log and vote in redb (`log_store`), the state
//! machine (`state_machine`) in redb (`state_db`) with a copy in memory for
//! reads, snapshots on disk (`snapshot`: their format), the peer network
//! over gRPC (`network`).

pub mod log_store;
pub mod network;
pub mod snapshot;
pub mod state_db;
pub mod state_machine;
pub mod zero_filled;

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

/// The encoding of log entries, votes and peer messages: postcard (compact
/// binary, no field names). JSON spent a tenth of each member's CPU writing
/// keys and values as arrays of numbers. Keys and values are byte strings to
/// serde (`serde_bytes`): one copy instead of a call per byte, in the same
/// encoding as a sequence of bytes.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(value)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

pub(crate) fn read_error(err: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::read(&err).into()
}

pub(crate) fn write_error(err: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::write(&err).into()
}

#[cfg(test)]
mod codec_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use openraft::raft::{VoteRequest, VoteResponse};
    use openraft::{CommittedLeaderId, LogId, Vote};

    #[test]
    fn peer_messages_round_trip() {
        let vote = Vote::new(3, 7);
        let log_id = Some(LogId::new(CommittedLeaderId::new(2, 7), 9));
        let request = VoteRequest::<NodeId>::new(vote, log_id);
        let back: VoteRequest<NodeId> = decode(&encode(&request).unwrap()).unwrap();
        assert_eq!(back.vote, request.vote);
        assert_eq!(back.last_log_id, request.last_log_id);
        let response = VoteResponse::<NodeId> {
            vote,
            vote_granted: true,
            last_log_id: log_id,
        };
        let result: Result<VoteResponse<NodeId>, String> = Ok(response);
        let back: Result<VoteResponse<NodeId>, String> = decode(&encode(&result).unwrap()).unwrap();
        let back = back.unwrap();
        assert!(back.vote_granted);
        assert_eq!(back.vote, vote);
    }

    /// Keys and values as byte strings encode exactly as the sequences of
    /// bytes they were before, in the log (postcard) and in snapshots (JSON),
    /// so members read what older versions wrote and the other way round.
    #[test]
    fn byte_strings_keep_the_encoding_of_byte_sequences() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Before {
            key: Vec<u8>,
            create_revision: i64,
            mod_revision: i64,
            version: i64,
            value: Vec<u8>,
            lease: i64,
        }
        let now = crate::mvcc::KeyValue {
            key: b"ab".to_vec(),
            create_revision: 1,
            mod_revision: 2,
            version: 1,
            value: vec![0, 255, 7],
            lease: 0,
        };
        let before = Before {
            key: now.key.clone(),
            create_revision: 1,
            mod_revision: 2,
            version: 1,
            value: now.value.clone(),
            lease: 0,
        };
        let bytes = encode(&now).unwrap();
        assert_eq!(bytes, encode(&before).unwrap());
        assert_eq!(bytes, [2, b'a', b'b', 2, 4, 2, 3, 0, 255, 7, 0]);
        assert_eq!(decode::<Before>(&bytes).unwrap(), before);
        assert_eq!(decode::<crate::mvcc::KeyValue>(&bytes).unwrap(), now);

        let json = serde_json::to_string(&now).unwrap();
        assert_eq!(json, serde_json::to_string(&before).unwrap());
        assert_eq!(
            serde_json::from_str::<crate::mvcc::KeyValue>(&json).unwrap(),
            now
        );
    }
}
