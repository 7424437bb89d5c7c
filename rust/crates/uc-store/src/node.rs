//! One running member: Raft, the shared state, and what every API needs —
//! proposing writes (forwarded to the leader from a follower), linearizable
//! read barriers (read index, asked of the leader), response headers, and
//! the leader's own duties (lease expiry, auto-compaction).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::ServerState;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tonic::{Code, Status};
use uc_daemon::metrics::Histogram;
use uc_proto::etcdserverpb::ResponseHeader;
use uc_proto::ucpeer::peer_client::PeerClient;
use uc_proto::ucpeer::Payload;

use crate::errors;
use crate::raft::log_store::CommitIndex;
use crate::raft::network::{Acks, PeerChannels};
use crate::raft::state_machine::Shared;
use crate::raft::{Member, NodeId, Raft};
use crate::state::{AlarmAction, Applied, Command, Reply};

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

/// Connections accepted, by listener kind (a metric: members keep one
/// connection to each other, so the peer count should stay small).
#[derive(Default)]
pub struct Accepted {
    pub peer: AtomicU64,
    pub client: AtomicU64,
}

/// Where a write's time goes, for `/metrics`.
pub struct Timings {
    /// The Raft log writer's commits, fsync included.
    pub log_commits: Arc<Histogram>,
    /// The state writer's commits of applied batches.
    pub state_commits: Arc<Histogram>,
    /// Replication round trips to followers (this member leading).
    pub round_trips: Arc<Histogram>,
    /// Proposals of this member as leader: proposed to applied here.
    pub proposals: Histogram,
    /// Writes in those proposals (one proposal carries a batch).
    pub proposed_writes: AtomicU64,
}

/// Read-index rounds, by how leadership was confirmed (a metric).
#[derive(Default)]
pub struct ReadRounds {
    pub lease: AtomicU64,
    pub quorum: AtomicU64,
    /// A follower asked the leader.
    pub forwarded: AtomicU64,
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
    async fn propose(&self, command: Command) -> Result<Applied, Status> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let timed_out = |_| Submitted::Failed(errors::timeout());
        let mut submitted = tokio::time::timeout_at(deadline, self.submit(command.clone()))
            .await
            .unwrap_or_else(timed_out);
        loop {
            submitted = match submitted {
                Submitted::Applied(applied) => {
                    self.wait_applied_revision(applied.revision).await?;
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
    async fn submit(&self, command: Command) -> Submitted {
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
            match self.leader_elsewhere() {
                Some(to) => {
                    let node = self.clone();
                    tokio::spawn(async move { node.forward_batch(to, batch).await });
                }
                None => self.propose_batch(batch).await,
            }
        }
    }

    /// The leader as this member knows it, with its member info if known.
    fn known_leader(&self) -> ForwardToLeader<NodeId, Member> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        ForwardToLeader {
            leader_id: metrics.current_leader,
            leader_node: metrics.current_leader.and_then(|id| {
                metrics
                    .membership_config
                    .membership()
                    .get_node(&id)
                    .cloned()
            }),
        }
    }

    /// The leader, when this member knows it and is not it.
    fn leader_elsewhere(&self) -> Option<ForwardToLeader<NodeId, Member>> {
        let to = self.known_leader();
        let elsewhere = to.leader_id.is_some_and(|id| id != self.id) && to.leader_node.is_some();
        elsewhere.then_some(to)
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
                self.timings.proposals.observe(proposed.elapsed());
                self.timings
                    .proposed_writes
                    .fetch_add(waiters.len() as u64, Ordering::Relaxed);
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
        let count = |counter: &AtomicU64| {
            counter.fetch_add(1, Ordering::Relaxed);
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

    /// Lease keep-alive: the leader's clock decides, so a follower asks it.
    pub async fn keep_alive(&self, id: i64) -> Result<i64, Status> {
        if self.is_leader() {
            return Ok(self.shared.keep_alive(id).unwrap_or(-1));
        }
        match self.forward_to_leader(Forward::KeepAlive(id)).await? {
            Forwarded::Ttl(ttl) => Ok(ttl),
            other => Err(errors::internal(format!("leader answered {other:?}"))),
        }
    }

    pub async fn time_to_live(&self, id: i64) -> Result<i64, Status> {
        if self.is_leader() {
            return Ok(self.shared.remaining(id).unwrap_or(-1));
        }
        match self.forward_to_leader(Forward::TimeToLive(id)).await? {
            Forwarded::Ttl(ttl) => Ok(ttl),
            other => Err(errors::internal(format!("leader answered {other:?}"))),
        }
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        metrics.state == ServerState::Leader
    }

    /// Sends a request to the current leader (the caller is not it).
    pub async fn forward_to_leader(&self, request: Forward) -> Result<Forwarded, Status> {
        self.forward(&self.known_leader(), request).await
    }

    async fn forward(
        &self,
        to: &ForwardToLeader<NodeId, Member>,
        request: Forward,
    ) -> Result<Forwarded, Status> {
        let (Some(leader), Some(member)) = (to.leader_id, to.leader_node.as_ref()) else {
            return Err(errors::no_leader());
        };
        if leader == self.id {
            return Err(errors::leader_changed());
        }
        let mut client = PeerClient::new(self.channels.member(member).map_err(Status::internal)?);
        let data = crate::raft::encode(&request).map_err(|e| errors::internal(e.to_string()))?;
        let mut grpc = tonic::Request::new(Payload { data });
        grpc.set_timeout(self.request_timeout);
        let reply = client.forward(grpc).await.map_err(|status| {
            tracing::debug!(leader, %status, "forward to the leader failed");
            if status.code() == Code::DeadlineExceeded {
                errors::timeout()
            } else {
                errors::no_leader()
            }
        })?;
        let result: Result<Forwarded, Failure> = crate::raft::decode(&reply.into_inner().data)
            .map_err(|e| errors::internal(format!("undecodable leader reply: {e}")))?;
        result.map_err(Status::from)
    }

    /// Serves a follower's forwarded request (this member should be leader).
    pub async fn serve_forward(&self, request: Forward) -> Result<Forwarded, Status> {
        match request {
            Forward::Write(command) => {
                if !self.is_leader() {
                    return Err(errors::not_leader());
                }
                match tokio::time::timeout(self.request_timeout, self.submit(command)).await {
                    Err(_) => Err(errors::timeout()),
                    Ok(Submitted::Applied(applied)) => Ok(Forwarded::Applied(applied)),
                    // Not proposed: the follower asks the new leader.
                    Ok(Submitted::NotLeader(_)) => Err(errors::leader_changed()),
                    Ok(Submitted::Failed(status)) => Err(status),
                }
            }
            Forward::ReadIndex => {
                if !self.is_leader() {
                    return Err(errors::not_leader());
                }
                let index = self.batched_read_index().await?;
                Ok(Forwarded::ReadIndex(index.unwrap_or(0)))
            }
            Forward::KeepAlive(id) => {
                if !self.is_leader() {
                    return Err(errors::not_leader());
                }
                Ok(Forwarded::Ttl(self.shared.keep_alive(id).unwrap_or(-1)))
            }
            Forward::TimeToLive(id) => {
                if !self.is_leader() {
                    return Err(errors::not_leader());
                }
                Ok(Forwarded::Ttl(self.shared.remaining(id).unwrap_or(-1)))
            }
            Forward::Membership(change) => {
                self.change_membership(change).await?;
                Ok(Forwarded::Done)
            }
            Forward::Campaign => {
                tracing::info!("standing for election: the leader moves its leadership here");
                self.raft
                    .trigger()
                    .elect()
                    .await
                    .map_err(|e| errors::stopped(e.to_string()))?;
                Ok(Forwarded::Done)
            }
        }
    }

    /// Moves the leadership to voter `target` (Maintenance.MoveLeader).
    /// openraft 0.9 has no leader transfer, and a follower refuses votes
    /// for a leader lease after hearing from its leader. So the leader
    /// waits until `target` has its whole log, then keeps quiet (no
    /// heartbeats, proposals or read rounds) for one leader lease, and asks
    /// `target` to stand for election: with the newest log and every
    /// follower's lease lapsed, it wins before any follower's own election
    /// timer fires. Writes and reads wait meanwhile (one leader lease and
    /// an election), as on etcd during a transfer.
    pub async fn move_leader(&self, target: NodeId) -> Result<(), Status> {
        if !self.is_leader() {
            return Err(errors::not_leader());
        }
        if target == self.id {
            return Ok(());
        }
        let member = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            match membership.get_node(&target) {
                Some(member) if membership.voter_ids().any(|id| id == target) => member.clone(),
                _ => return Err(errors::bad_leader_transferee()),
            }
        };
        let _turn = self.membership_changes.lock().await;
        let _quiet = self.quiet.write().await;
        let started = Instant::now();
        let give_up = started + self.election_timeout * 3;
        loop {
            let caught_up = {
                let metrics = self.raft.metrics();
                let metrics = metrics.borrow();
                let last = metrics.last_log_index;
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&target).cloned().flatten())
                    .map(|id| id.index);
                last.is_some() && matched == last
            };
            if caught_up {
                break;
            }
            if !self.is_leader() {
                return Err(errors::not_leader());
            }
            if Instant::now() > give_up {
                return Err(errors::leader_transfer_timeout());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let term = self.term();
        self.raft.runtime_config().heartbeat(false);
        let moved = async {
            let margin = (self.leader_lease / 10).max(Duration::from_millis(50));
            tokio::time::sleep(self.leader_lease + margin).await;
            let to = ForwardToLeader {
                leader_id: Some(target),
                leader_node: Some(member),
            };
            self.forward(&to, Forward::Campaign).await?;
            let wait = give_up
                .saturating_duration_since(Instant::now())
                .max(self.election_timeout * 2);
            self.raft
                .wait(Some(wait))
                .metrics(
                    |m| m.current_term > term && m.current_leader == Some(target),
                    "the transferee leads",
                )
                .await
                .map(drop)
                .map_err(|_| errors::leader_transfer_timeout())
        }
        .await;
        self.raft.runtime_config().heartbeat(true);
        match &moved {
            Ok(()) => tracing::info!(
                to = format!("{target:x}"),
                took_ms = started.elapsed().as_millis() as u64,
                "leadership moved"
            ),
            Err(status) => {
                tracing::warn!(to = format!("{target:x}"), %status, "moving the leadership failed")
            }
        }
        moved
    }

    /// Applies a membership change on the leader (forwarded from a follower).
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), Status> {
        if !self.is_leader() {
            return match self.forward_to_leader(Forward::Membership(change)).await? {
                Forwarded::Done => Ok(()),
                other => Err(errors::internal(format!("leader answered {other:?}"))),
            };
        }
        let _turn = self.membership_changes.lock().await;
        let voters = || -> std::collections::BTreeSet<NodeId> {
            self.raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .collect()
        };
        // The leader's view of a member, so that changes made elsewhere
        // meanwhile (a publish from a member still catching up, an update)
        // are not undone.
        let current = |id: NodeId| -> Result<Member, Status> {
            self.raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .get_node(&id)
                .cloned()
                .ok_or_else(errors::member_not_found)
        };
        let result = match change {
            MembershipChange::Publish {
                id,
                name,
                client_urls,
            } => {
                let member = Member {
                    name,
                    client_urls,
                    ..current(id)?
                };
                self.set_node(id, member).await
            }
            MembershipChange::UpdatePeerUrls { id, peer_urls } => {
                let member = Member {
                    peer_urls,
                    ..current(id)?
                };
                self.set_node(id, member).await
            }
            MembershipChange::AddLearner { id, member } => {
                self.raft.add_learner(id, member, false).await.map(|_| ())
            }
            MembershipChange::AddVoter { id, member } => {
                // Blocking: the new member catches up before it votes.
                match self.raft.add_learner(id, member, true).await {
                    Ok(_) => {
                        let mut ids = voters();
                        ids.insert(id);
                        self.raft.change_membership(ids, false).await.map(|_| ())
                    }
                    Err(err) => Err(err),
                }
            }
            MembershipChange::Promote { id } => {
                let mut ids = voters();
                ids.insert(id);
                self.raft.change_membership(ids, false).await.map(|_| ())
            }
            MembershipChange::Remove { id } => {
                let ids = std::collections::BTreeSet::from([id]);
                // Not retained as a learner: a removed member is gone.
                let change = if voters().contains(&id) {
                    openraft::ChangeMembers::RemoveVoters(ids)
                } else {
                    openraft::ChangeMembers::RemoveNodes(ids)
                };
                self.raft.change_membership(change, false).await.map(|_| ())
            }
        };
        result.map_err(|err| match err {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => errors::leader_changed(),
            RaftError::APIError(ClientWriteError::ChangeMembershipError(err)) => {
                Status::failed_precondition(format!("etcdserver: {err}"))
            }
            RaftError::Fatal(err) => errors::stopped(err.to_string()),
        })
    }

    /// Replaces one member's node info (voters and learners unchanged).
    async fn set_node(
        &self,
        id: NodeId,
        member: Member,
    ) -> Result<(), RaftError<NodeId, ClientWriteError<NodeId, Member>>> {
        self.raft
            .change_membership(
                openraft::ChangeMembers::SetNodes(BTreeMap::from([(id, member)])),
                false,
            )
            .await
            .map(|_| ())
    }

    /// Publishes this member's name and client URLs into the membership once
    /// there is a leader, and again whenever they differ (e.g. after
    /// MemberAdd registered the member without them).
    pub fn publish(self: &Arc<Self>, me: Member) {
        let node = self.clone();
        tokio::spawn(async move {
            loop {
                let current = {
                    let metrics = node.raft.metrics().borrow().clone();
                    let known = metrics.current_leader.is_some();
                    let node_info = metrics
                        .membership_config
                        .membership()
                        .get_node(&node.id)
                        .cloned();
                    (known, node_info)
                };
                match current {
                    (true, Some(info))
                        if info.name == me.name && info.client_urls == me.client_urls =>
                    {
                        return
                    }
                    (true, Some(_)) => {
                        let change = MembershipChange::Publish {
                            id: node.id,
                            name: me.name.clone(),
                            client_urls: me.client_urls.clone(),
                        };
                        match node.change_membership(change).await {
                            Ok(()) => {
                                tracing::info!(name = me.name, client_urls = ?me.client_urls, "published member attributes");
                            }
                            Err(status) => {
                                tracing::debug!(%status, "publishing member attributes failed; retrying")
                            }
                        }
                    }
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// Promotes a learner added as a voter (MemberAdd) once it has caught
    /// up with the log; gives up after ten minutes or when it is removed.
    pub fn promote_when_caught_up(self: &Arc<Self>, id: NodeId) {
        let node = self.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(600);
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let metrics = node.raft.metrics().borrow().clone();
                let membership = metrics.membership_config.membership().clone();
                if membership.get_node(&id).is_none() || membership.voter_ids().any(|v| v == id) {
                    return;
                }
                let last = metrics.last_log_index.unwrap_or(0);
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .map_or(0, |log_id| log_id.index);
                if metrics.state == ServerState::Leader && matched + 16 >= last && matched > 0 {
                    match node
                        .change_membership(MembershipChange::Promote { id })
                        .await
                    {
                        Ok(()) => {
                            tracing::info!(
                                id = format!("{id:x}"),
                                "new member caught up; promoted to voter"
                            );
                            return;
                        }
                        Err(status) => {
                            tracing::warn!(%status, "promoting a new member failed; retrying")
                        }
                    }
                }
            }
        });
    }

    /// The leader's duties: fresh lease TTLs on election, revoking expired
    /// leases, and periodic compaction. Runs until the process stops.
    pub async fn run_leader_duties(self: Arc<Self>, compaction_retention: Option<Duration>) {
        let mut metrics = self.raft.metrics();
        let mut led_term = None;
        let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
        let sample_every = compaction_retention
            .map(|r| (r / 10).max(Duration::from_secs(1)))
            .unwrap_or(Duration::from_secs(3600));
        let mut last_sample = Instant::now() - sample_every;
        loop {
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            let (state, term) = {
                let m = metrics.borrow();
                (m.state, m.current_term)
            };
            if state != ServerState::Leader {
                led_term = None;
                samples.clear();
                continue;
            }
            if led_term != Some(term) {
                led_term = Some(term);
                self.shared.refresh_leases();
                tracing::info!(term, "leading; leases get a fresh TTL");
            }
            for id in self.shared.expired() {
                tracing::info!(lease = id, "lease expired; revoking");
                if let Err(status) = self.propose(Command::LeaseRevoke { id }).await {
                    tracing::warn!(lease = id, %status, "revoking an expired lease failed");
                    break;
                }
            }
            if let Some(retention) = compaction_retention {
                let now = Instant::now();
                if now.duration_since(last_sample) >= sample_every {
                    last_sample = now;
                    samples.push_back((now, self.revision()));
                }
                let mut target = None;
                while let Some((at, revision)) = samples.front().copied() {
                    if now.duration_since(at) >= retention {
                        target = Some(revision);
                        samples.pop_front();
                    } else {
                        break;
                    }
                }
                let compacted = self.shared.read().state.keyspace.compacted_revision();
                if let Some(revision) = target.filter(|r| *r > compacted) {
                    match self.propose(Command::Compact { revision }).await {
                        Ok(_) => tracing::info!(revision, "auto-compaction"),
                        Err(status) => tracing::warn!(revision, %status, "auto-compaction failed"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::AtomicUsize;

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
