//! What crosses the peer port between a follower and the leader: the
//! requests a follower forwards, the leader's answers, and its errors.

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

use crate::raft::{Member, NodeId};
use crate::state::{Applied, Command};

/// What a follower asks of the leader on the peer port.
#[derive(Debug, Serialize, Deserialize)]
pub enum Forward {
    Write(Command),
    /// The leader confirms its leadership and answers the index a
    /// linearizable read must wait for.
    ReadIndex,
    KeepAlive(i64),
    TimeToLive(i64),
    Membership(MembershipChange),
    /// To the transferee of a MoveLeader: stand for election now.
    Campaign,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Forwarded {
    Applied(Applied),
    ReadIndex(u64),
    /// A lease's TTL or seconds left; -1 when it does not exist.
    Ttl(i64),
    Done,
}

/// An error that crosses the peer port.
#[derive(Debug, Serialize, Deserialize)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Failure {
            code: status.code() as i32,
            message: status.message().to_string(),
        }
    }
}

impl From<Failure> for Status {
    fn from(failure: Failure) -> Self {
        Status::new(Code::from_i32(failure.code), failure.message)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MembershipChange {
    AddLearner {
        id: NodeId,
        member: Member,
    },
    /// Not sent by this version (MemberAdd adds a learner and promotes it
    /// once caught up); kept so the variants after it keep their encoding.
    AddVoter {
        id: NodeId,
        member: Member,
    },
    Promote {
        id: NodeId,
    },
    Remove {
        id: NodeId,
    },
    /// A member's own name and client URLs, published when it starts (as
    /// etcd publishes member attributes); the leader keeps its peer URLs.
    Publish {
        id: NodeId,
        name: String,
        client_urls: Vec<String>,
    },
    /// MemberUpdate: new peer URLs; the leader keeps name and client URLs.
    UpdatePeerUrls {
        id: NodeId,
        peer_urls: Vec<String>,
    },
}
