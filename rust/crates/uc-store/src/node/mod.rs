//! One running member: Raft, the shared state, and what every API needs.
//! Each concern has a room of its own:
//!
//! - `propose`: writes, batched into log entries by the proposer (a
//!   follower's go to the leader).
//! - `forward`: what a follower asks of the leader on the peer port, and how
//!   the leader answers it (`messages`: what crosses that port).
//! - `read_index`: linearizable read barriers (the leader lease, or a round
//!   to a quorum), shared by concurrent reads (`read_batcher`).
//! - `membership`: member changes, publishing this member's URLs, promoting
//!   learners, MoveLeader.
//! - `duties`: the leader's own work (lease expiry, auto-compaction).
//!
//! Here: the member itself, what its proposer is handed, its response
//! headers and its metrics' counters. The rooms use what is here; this
//! module uses none of theirs but the leaves `messages` and `read_batcher`.

mod duties;
mod forward;
mod membership;
mod messages;
mod propose;
mod read_batcher;
mod read_index;

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::ForwardToLeader;
use openraft::ServerState;
use tonic::Status;
use uc_daemon::metrics::{Counter, Histogram};
use uc_proto::etcdserverpb::ResponseHeader;

use crate::raft::log_store::CommitIndex;
use crate::raft::network::{Acks, PeerChannels};
use crate::raft::state_machine::Shared;
use crate::raft::{Member, NodeId, Raft};
use crate::state::{Applied, Command};

pub use messages::{Failure, Forward, Forwarded, MembershipChange};
pub use read_batcher::ReadBatcher;

pub struct Node {
    pub id: NodeId,
    pub cluster_id: u64,
    pub name: String,
    /// --initial-cluster-token: part of every member id.
    pub token: String,
    pub raft: Raft,
    pub shared: Arc<Shared>,
    /// --quota-backend-bytes; 0: etcd's default of 2 GiB.
    pub quota: u64,
    pub request_timeout: Duration,
    /// --election-timeout.
    pub election_timeout: Duration,
    pub db_path: std::path::PathBuf,
    /// Connections to peers, shared with Raft's network.
    pub(crate) channels: PeerChannels,
    pub(crate) reads: ReadBatcher,
    /// Followers' acknowledgements of this member as leader (lease reads).
    pub(crate) acks: Acks,
    pub(crate) commit_index: CommitIndex,
    /// How long after a send time a quorum's acknowledgement lets the leader
    /// serve linearizable reads without a heartbeat round; None: always ask
    /// a quorum (--lease-reads false).
    pub lease_window: Option<Duration>,
    /// A restarted member forgot the leases it gave: it grants no vote
    /// before this, so no leader is elected while an old one may still
    /// serve reads on its lease.
    pub votes_from: Instant,
    pub read_rounds: ReadRounds,
    pub timings: Timings,
    /// Connections accepted on the peer and the client listeners.
    pub accepted: Accepted,
    pub(crate) proposals: tokio::sync::mpsc::Sender<Proposal>,
    /// Held by the leader while it changes the membership: openraft refuses
    /// a change while another is uncommitted, so concurrent ones (members
    /// publishing their URLs at start, a MemberAdd) wait their turn instead.
    pub(crate) membership_changes: tokio::sync::Mutex<()>,
    /// Held shared around what makes the leader send to its followers
    /// (proposals, read rounds); MoveLeader holds it exclusively while the
    /// leader keeps quiet (see `move_leader`).
    pub(crate) quiet: tokio::sync::RwLock<()>,
    /// openraft's leader lease: how long a follower refuses other
    /// candidates after hearing from its leader.
    pub leader_lease: Duration,
}

/// What became of a submitted write.
#[derive(Debug)]
pub enum Submitted {
    Applied(Applied),
    /// Not proposed, and never to be committed: this member did not lead
    /// (openraft answers so too for entries a new leader truncated). Safe to
    /// send to the leader.
    NotLeader(ForwardToLeader<NodeId, Member>),
    /// Failed, maybe after it was proposed: the client hears this.
    Failed(Status),
}

/// A write waiting for the proposer.
pub type Proposal = (Command, tokio::sync::oneshot::Sender<Submitted>);

/// Connections accepted, by listener kind (a metric: members keep one
/// connection to each other, so the peer count should stay small).
#[derive(Default)]
pub struct Accepted {
    pub peer: Counter,
    pub client: Counter,
}

/// Where a write's time goes, for `/metrics`.
pub struct Timings {
    /// The Raft log writer's commits, fsync included.
    pub log_commits: Histogram,
    /// The state writer's commits of applied batches.
    pub state_commits: Histogram,
    /// Replication round trips to followers (this member leading).
    pub round_trips: Histogram,
    /// Proposals of this member as leader: proposed to applied here.
    pub proposals: Histogram,
    /// Writes in those proposals (one proposal carries a batch).
    pub proposed_writes: Counter,
}

/// Read-index rounds, by how leadership was confirmed (a metric).
#[derive(Default)]
pub struct ReadRounds {
    pub lease: Counter,
    pub quorum: Counter,
    /// A follower asked the leader.
    pub forwarded: Counter,
}

impl Node {
    /// etcd's minimum lease TTL: 1.5 election timeouts, in whole seconds.
    pub fn min_lease_ttl(&self) -> i64 {
        (self.election_timeout.as_secs_f64() * 1.5).ceil() as i64
    }

    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn revision(&self) -> i64 {
        self.shared.read().state.keyspace.revision()
    }

    pub fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.id,
            revision,
            raft_term: self.term(),
        })
    }

    /// Header at the current revision.
    pub fn current_header(&self) -> Option<ResponseHeader> {
        self.header(self.revision())
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        metrics.state == ServerState::Leader
    }
}
