//! The membership: changes (MemberAdd, MemberRemove, MemberUpdate, a
//! member publishing its URLs) made by the leader, learners promoted once
//! caught up, and MoveLeader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use openraft::ServerState;
use tonic::Status;

use super::messages::{Forward, Forwarded, MembershipChange};
use super::Node;
use crate::errors;
use crate::raft::{Member, NodeId};

impl Node {
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
                // Checked here, on the leader and in turn with other changes:
                // the member serving the request may not yet have applied an
                // earlier removal, and removing an absent node is a no-op
                // that would answer a second MemberRemove with success.
                current(id)?;
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
}
