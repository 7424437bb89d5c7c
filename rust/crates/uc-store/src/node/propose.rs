//! Writes: a client's write goes to the proposer, which puts the writes
//! that queue up meanwhile into one log entry (the leader) or one question
//! to the leader (a follower), and answers each once it is applied here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use tonic::Status;
use tracing::Instrument;

use super::messages::{Forward, Forwarded};
use super::{Node, Proposal, Submitted};
use crate::errors;
use crate::raft::{Member, NodeId};
use crate::state::{AlarmAction, Applied, Command, Reply};

/// Pause before asking again where the leadership has moved.
const LEADER_MOVED_PAUSE: Duration = Duration::from_millis(20);

/// Whether a leader's refusal means the write was not proposed there.
fn refused_unproposed(status: &Status) -> bool {
    [errors::not_leader(), errors::leader_changed()]
        .iter()
        .any(|refusal| refusal.code() == status.code() && refusal.message() == status.message())
}

/// Commands per batched log entry at most.
const MAX_BATCH: usize = 128;

impl Node {
    /// Proposes a write and waits until it is applied here; from a follower
    /// the leader proposes it.
    pub async fn write(&self, command: Command) -> Result<Applied, Status> {
        if self.over_quota(&command) {
            let alarm = Command::Alarm {
                action: AlarmAction::Activate,
                member: self.id,
            };
            tracing::warn!(
                quota = self.quota_bytes(),
                "database space exceeded; raising NOSPACE (writes refused until compaction, defragment and `etcdctl alarm disarm`)"
            );
            let _ = self.propose(alarm).await;
            return Err(errors::no_space());
        }
        let applied = self.propose(command).await?;
        match applied.reply {
            Reply::Error(err) => Err(errors::apply(&err)),
            _ => Ok(applied),
        }
    }

    pub fn quota_bytes(&self) -> u64 {
        if self.quota == 0 {
            2 * 1024 * 1024 * 1024
        } else {
            self.quota
        }
    }

    fn over_quota(&self, command: &Command) -> bool {
        let adds = matches!(
            command,
            Command::Put(_) | Command::Txn(_) | Command::LeaseGrant { .. }
        );
        adds && self.shared.read().state.size > self.quota_bytes()
    }

    /// Proposes a write (through the leader when this member does not
    /// lead) and waits until it is applied here, so the client reads its
    /// own write on this member. A write no leader proposed is sent again
    /// to wherever the leadership moved (a MoveLeader, an election), until
    /// the request times out.
    pub(super) async fn propose(&self, command: Command) -> Result<Applied, Status> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let timed_out = |_| Submitted::Failed(errors::timeout());
        let mut submitted = tokio::time::timeout_at(deadline, self.submit(command.clone()))
            .await
            .unwrap_or_else(timed_out);
        loop {
            submitted = match submitted {
                Submitted::Applied(applied) => {
                    self.wait_applied_revision(applied.revision).await?;
                    tracing::debug!(revision = applied.revision, "write applied");
                    return Ok(applied);
                }
                Submitted::Failed(status) => return Err(status),
                Submitted::NotLeader(to) => {
                    let forward = self.forward(&to, Forward::Write(command.clone()));
                    match tokio::time::timeout_at(deadline, forward).await {
                        Err(elapsed) => timed_out(elapsed),
                        Ok(Ok(Forwarded::Applied(applied))) => Submitted::Applied(applied),
                        Ok(Ok(other)) => Submitted::Failed(errors::internal(format!(
                            "leader answered {other:?}"
                        ))),
                        Ok(Err(status)) if refused_unproposed(&status) => {
                            tokio::time::sleep(LEADER_MOVED_PAUSE).await;
                            match self.leader_elsewhere() {
                                Some(to) => Submitted::NotLeader(to),
                                // This member leads now, or none is known
                                // yet: its proposer decides.
                                None => {
                                    tokio::time::timeout_at(deadline, self.submit(command.clone()))
                                        .await
                                        .unwrap_or_else(timed_out)
                                }
                            }
                        }
                        Ok(Err(status)) => Submitted::Failed(status),
                    }
                }
            };
            if let Submitted::NotLeader(_) = submitted {
                if tokio::time::Instant::now() >= deadline {
                    return Err(errors::timeout());
                }
            }
        }
    }

    /// Proposes through the batching proposer (see `run_proposer`).
    pub(super) async fn submit(&self, command: Command) -> Submitted {
        let (done, wait) = tokio::sync::oneshot::channel();
        let stopped = || Submitted::Failed(errors::stopped("raft stopped".to_string()));
        if self.proposals.send((command, done)).await.is_err() {
            return stopped();
        }
        wait.await.unwrap_or_else(|_| stopped())
    }

    /// Proposes writes one log entry at a time; the writes that queue up
    /// while an entry is being committed go together into the next one, so
    /// concurrent clients share the fsyncs (etcd batches proposals too). A
    /// follower forwards each batch to the leader as soon as it has one,
    /// without waiting for the previous one: the leader batches them again.
    pub async fn run_proposer(self: Arc<Self>, mut queue: tokio::sync::mpsc::Receiver<Proposal>) {
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            // One span per log entry (or per question to the leader), with
            // what a write's request span can be matched by: its revision.
            let member = format!("{:x}", self.id);
            match self.leader_elsewhere() {
                Some(to) => {
                    let span = tracing::info_span!(
                        "forward",
                        member,
                        writes = batch.len(),
                        leader = to.leader_id.map(|id| format!("{id:x}")),
                    );
                    let node = self.clone();
                    tokio::spawn(
                        async move { node.forward_batch(to, batch).await }.instrument(span),
                    );
                }
                None => {
                    let span = tracing::info_span!(
                        "propose",
                        member,
                        writes = batch.len(),
                        log_id = tracing::field::Empty,
                        revision = tracing::field::Empty,
                    );
                    self.propose_batch(batch).instrument(span).await
                }
            }
        }
    }

    /// A follower's batch: one question to the leader. If the leader did
    /// not propose it, each write asks the leader on its own (see
    /// `propose`); any other failure may have come after it was proposed,
    /// so each client hears it.
    async fn forward_batch(&self, to: ForwardToLeader<NodeId, Member>, batch: Vec<Proposal>) {
        let (commands, waiters): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
        let forwarded = self
            .forward(&to, Forward::Write(Command::Batch(commands)))
            .await;
        match forwarded {
            Ok(Forwarded::Applied(Applied {
                reply: Reply::Batch(items),
                ..
            })) if items.len() == waiters.len() => {
                // Applied here too before anyone is answered (read-your-
                // writes, see `propose`): one wait for the whole batch.
                let newest = items.iter().map(|item| item.revision).max();
                let _ = self.wait_applied_revision(newest.unwrap_or(0)).await;
                for (waiter, item) in waiters.into_iter().zip(items) {
                    let _ = waiter.send(Submitted::Applied(item));
                }
            }
            Err(status) if refused_unproposed(&status) => {
                for waiter in waiters {
                    let _ = waiter.send(Submitted::NotLeader(to.clone()));
                }
            }
            other => {
                let status = match other {
                    Err(status) => status,
                    Ok(answer) => errors::internal(format!("leader answered {answer:?}")),
                };
                for waiter in waiters {
                    let _ = waiter.send(Submitted::Failed(status.clone()));
                }
            }
        }
    }

    /// The leader's batch (or one proposed while no leader is known): one
    /// log entry, committed before the next batch is proposed.
    async fn propose_batch(&self, batch: Vec<Proposal>) {
        let (commands, waiters): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
        let single = commands.len() == 1;
        let command = if single {
            commands
                .into_iter()
                .next()
                .unwrap_or(Command::Batch(Vec::new()))
        } else {
            Command::Batch(commands)
        };
        let _quiet = self.quiet.read().await;
        let proposed = Instant::now();
        match self.raft.client_write(command).await {
            Ok(response) => {
                let span = tracing::Span::current();
                span.record("log_id", tracing::field::display(&response.log_id));
                span.record("revision", response.data.revision);
                tracing::debug!("proposal applied");
                self.timings
                    .proposals
                    .observe(proposed.elapsed().as_secs_f64());
                self.timings.proposed_writes.inc_by(waiters.len() as u64);
                match response.data.reply {
                    Reply::Batch(items) if !single => {
                        for (waiter, item) in waiters.into_iter().zip(items) {
                            let _ = waiter.send(Submitted::Applied(item));
                        }
                    }
                    _ => {
                        for waiter in waiters {
                            let _ = waiter.send(Submitted::Applied(response.data.clone()));
                        }
                    }
                }
            }
            Err(err) => {
                let submitted = || match &err {
                    RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => {
                        Submitted::NotLeader(to.clone())
                    }
                    RaftError::APIError(ClientWriteError::ChangeMembershipError(err)) => {
                        Submitted::Failed(Status::failed_precondition(err.to_string()))
                    }
                    RaftError::Fatal(err) => Submitted::Failed(errors::stopped(err.to_string())),
                };
                for waiter in waiters {
                    let _ = waiter.send(submitted());
                }
            }
        }
    }

    async fn wait_applied_revision(&self, revision: i64) -> Result<(), Status> {
        if self.revision() >= revision {
            return Ok(());
        }
        let deadline = Instant::now() + self.request_timeout;
        let mut events = self.shared.events.subscribe();
        while self.revision() < revision {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(errors::timeout());
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), events.recv()).await;
        }
        Ok(())
    }
}
