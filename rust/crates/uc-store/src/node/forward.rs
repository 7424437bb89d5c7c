//! What a follower asks of the leader on the peer port (writes, read
//! indexes, lease TTLs, membership changes), and how the leader serves it.

use openraft::error::ForwardToLeader;
use tonic::{Code, Status};
use uc_proto::ucpeer::peer_client::PeerClient;
use uc_proto::ucpeer::Payload;

use super::messages::{Failure, Forward, Forwarded};
use super::{Node, Submitted};
use crate::errors;
use crate::raft::{Member, NodeId};

impl Node {
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
    pub(super) fn leader_elsewhere(&self) -> Option<ForwardToLeader<NodeId, Member>> {
        let to = self.known_leader();
        let elsewhere = to.leader_id.is_some_and(|id| id != self.id) && to.leader_node.is_some();
        elsewhere.then_some(to)
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

    /// Sends a request to the current leader (the caller is not it).
    pub async fn forward_to_leader(&self, request: Forward) -> Result<Forwarded, Status> {
        self.forward(&self.known_leader(), request).await
    }

    pub(super) async fn forward(
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
        let mut client = PeerClient::new(
            self.channels
                .member(member)
                .map_err(|e| Status::internal(e.to_string()))?,
        );
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
}
