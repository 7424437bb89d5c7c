//! Linearizable reads: the index a read waits for, confirmed on the leader
//! lease or by a round to a quorum (a follower asks the leader), one round
//! shared by the reads that arrived before it started.

use std::time::Instant;

use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::ServerState;
use tonic::Status;
use uc_daemon::metrics::Counter;

use super::messages::{Forward, Forwarded};
use super::Node;
use crate::errors;

impl Node {
    /// Waits until this member may serve a linearizable read.
    pub async fn read_barrier(&self) -> Result<(), Status> {
        if let Some(index) = self.batched_read_index().await? {
            let applied = self.shared.read().last_applied.map(|id| id.index);
            if applied >= Some(index) {
                return Ok(());
            }
            self.raft
                .wait(Some(self.request_timeout))
                .applied_index_at_least(Some(index), "linearizable read")
                .await
                .map_err(|_| errors::timeout())?;
        }
        Ok(())
    }

    /// The read index for a linearizable read, shared by concurrent reads:
    /// one round (a heartbeat to a quorum, or one question to the leader)
    /// serves every read that arrived before the round started, as etcd's
    /// linearizable read loop does.
    pub async fn batched_read_index(&self) -> Result<Option<u64>, Status> {
        self.reads.read_index(|| self.read_index_once()).await
    }

    async fn read_index_once(&self) -> Result<Option<u64>, Status> {
        let count = |counter: &Counter| {
            counter.inc();
        };
        if let Some(index) = self.lease_read_index().await {
            count(&self.read_rounds.lease);
            return Ok(Some(index));
        }
        let quiet = self.quiet.read().await;
        let round = tokio::time::timeout(self.request_timeout, self.raft.get_read_log_id()).await;
        drop(quiet);
        match round {
            Err(_) => Err(errors::timeout()),
            Ok(Ok((read_log_id, _))) => {
                count(&self.read_rounds.quorum);
                Ok(read_log_id.map(|id| id.index))
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to)))) => {
                count(&self.read_rounds.forwarded);
                match self.forward(&to, Forward::ReadIndex).await? {
                    Forwarded::ReadIndex(index) => Ok(Some(index)),
                    other => Err(errors::internal(format!("leader answered {other:?}"))),
                }
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => {
                Err(errors::timeout())
            }
            Ok(Err(RaftError::Fatal(err))) => Err(errors::stopped(err.to_string())),
        }
    }

    /// The read index without a heartbeat round, when this member leads, a
    /// quorum acknowledged it recently enough that no other member can have
    /// been elected since (followers refuse votes for the leader lease after
    /// an AppendEntries; `lease_window` is half of that), and an entry of its
    /// term is committed (its commit index then covers every acknowledged
    /// write). Checked again after reading the commit index, so the lease
    /// held throughout. No round through the Raft core: the commit index is
    /// the one openraft saved last (see `CommitIndex`).
    async fn lease_read_index(&self) -> Option<u64> {
        let window = self.lease_window?;
        let (vote, membership) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            if metrics.state != ServerState::Leader {
                return None;
            }
            (metrics.vote, metrics.membership_config.clone())
        };
        let holds = || {
            Instant::now().checked_sub(window).is_some_and(|since| {
                self.acks
                    .quorum_since(self.id, &vote, membership.membership(), since)
            })
        };
        if !holds() {
            return None;
        }
        let committed = self.commit_index.get()?;
        let leader = vote.leader_id();
        if committed.leader_id.term != leader.term
            || committed.leader_id.node_id != leader.node_id
            || !holds()
        {
            return None;
        }
        Some(committed.index)
    }
}
