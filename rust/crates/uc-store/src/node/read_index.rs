//! Linearizable reads: the index a read waits for, confirmed on the leader
//! lease or by a round to a quorum (a follower asks the leader), one round
//! shared by the reads that arrived before it started.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::ServerState;
use tokio::sync::Mutex;
use tonic::Status;
use uc_daemon::metrics::Counter;

use super::messages::{Forward, Forwarded};
use super::Node;
use crate::errors;

/// Read-index rounds, by how leadership was confirmed (a metric).
#[derive(Default)]
pub struct ReadRounds {
    pub lease: Counter,
    pub quorum: Counter,
    /// A follower asked the leader.
    pub forwarded: Counter,
}

/// Coalesces concurrent read-index rounds (see `Node::batched_read_index`).
pub struct ReadBatcher {
    /// Reads that asked so far (tickets).
    arrived: AtomicU64,
    /// Held while a round runs; waiting for it is waiting for the round.
    round: Mutex<()>,
    /// The last finished round: the tickets it covers and its answer.
    last: std::sync::Mutex<(u64, Result<Option<u64>, Status>)>,
}

impl Default for ReadBatcher {
    fn default() -> Self {
        ReadBatcher {
            arrived: AtomicU64::new(0),
            round: Mutex::new(()),
            last: std::sync::Mutex::new((0, Ok(None))),
        }
    }
}

impl ReadBatcher {
    /// The answer of a `round` that started after this call: a finished one
    /// if it covers this read, else one this read runs for every read that
    /// arrived until then. Whoever runs a round holds `round`, so a read
    /// waiting for it wakes when it ends, cancelled or not.
    pub async fn read_index<F, R>(&self, round: F) -> Result<Option<u64>, Status>
    where
        F: FnOnce() -> R,
        R: std::future::Future<Output = Result<Option<u64>, Status>>,
    {
        let ticket = self.arrived.fetch_add(1, Ordering::SeqCst) + 1;
        let _round = self.round.lock().await;
        {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.0 >= ticket {
                return last.1.clone();
            }
        }
        let covers = self.arrived.load(Ordering::SeqCst);
        let result = round().await;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = (covers, result.clone());
        result
    }
}

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Duration;

    /// A read that arrives while a round runs gets the next round's answer
    /// (the running one may predate its write), and the reads waiting
    /// together share that one round.
    #[tokio::test]
    async fn reads_share_rounds_that_start_after_them() {
        let batcher = Arc::new(ReadBatcher::default());
        let rounds = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let read = |batcher: Arc<ReadBatcher>| {
            let (rounds, release) = (rounds.clone(), release.clone());
            tokio::spawn(async move {
                batcher
                    .read_index(|| async move {
                        let n = rounds.fetch_add(1, Ordering::SeqCst) + 1;
                        release.notified().await;
                        Ok(Some(n as u64))
                    })
                    .await
            })
        };
        let first = read(batcher.clone());
        while rounds.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let later: Vec<_> = (0..8).map(|_| read(batcher.clone())).collect();
        tokio::task::yield_now().await;
        release.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), Some(1));
        while rounds.load(Ordering::SeqCst) == 1 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        for read in later {
            assert_eq!(read.await.unwrap().unwrap(), Some(2));
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 2);
    }

    /// The read running a round can be dropped (its client gave up): the
    /// reads waiting for that round go on with a round of their own.
    #[tokio::test]
    async fn a_dropped_round_does_not_strand_the_reads_waiting_for_it() {
        let batcher = Arc::new(ReadBatcher::default());
        let started = Arc::new(tokio::sync::Notify::new());
        let stuck = {
            let (batcher, started) = (batcher.clone(), started.clone());
            tokio::spawn(async move {
                batcher
                    .read_index(|| async move {
                        started.notify_one();
                        std::future::pending().await
                    })
                    .await
            })
        };
        started.notified().await;
        let waiting = {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.read_index(|| async { Ok(Some(7)) }).await })
        };
        tokio::task::yield_now().await;
        stuck.abort();
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting read hung after the round it waited for was dropped");
        assert_eq!(answer.unwrap().unwrap(), Some(7));
    }

    /// Many readers in bursts, each round ending at once: every read is
    /// answered (a lost wake-up left one waiting until the next read came).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bursts_of_reads_all_finish() {
        let batcher = Arc::new(ReadBatcher::default());
        for _ in 0..300 {
            let reads: Vec<_> = (0..16)
                .map(|_| {
                    let batcher = batcher.clone();
                    tokio::spawn(async move {
                        batcher
                            .read_index(|| async {
                                tokio::task::yield_now().await;
                                Ok(Some(1))
                            })
                            .await
                    })
                })
                .collect();
            for read in reads {
                let answer = tokio::time::timeout(Duration::from_secs(5), read)
                    .await
                    .expect("a read hung");
                assert_eq!(answer.unwrap().unwrap(), Some(1));
            }
        }
    }
}
