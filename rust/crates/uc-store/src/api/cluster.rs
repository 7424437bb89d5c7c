//! etcd's Cluster service over Raft membership. A member's id is derived
//! from its peer URLs and the cluster token (see `ids`), so a member started
//! with `--initial-cluster-state existing` knows the id MemberAdd gave it.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use uc_proto::etcdserverpb as pb;
use uc_proto::etcdserverpb::cluster_server::Cluster;

use crate::errors;
use crate::ids;
use crate::node::{MembershipChange, Node};
use crate::raft::Member;

pub struct ClusterService {
    pub node: Arc<Node>,
}

impl ClusterService {
    fn members(&self) -> Vec<pb::Member> {
        let metrics = self.node.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let learners: Vec<u64> = membership.learner_ids().collect();
        membership
            .nodes()
            .map(|(id, member)| pb::Member {
                id: *id,
                name: member.name.clone(),
                peer_ur_ls: member.peer_urls.clone(),
                client_ur_ls: member.client_urls.clone(),
                is_learner: learners.contains(id),
            })
            .collect()
    }

    /// After a change made through the leader, until this member's log has
    /// it too, so the members it lists include the change.
    async fn caught_up(&self) -> Result<(), Status> {
        self.node.read_barrier().await
    }

    fn response_header(&self) -> Option<pb::ResponseHeader> {
        self.node.current_header()
    }
}

fn valid_urls(urls: &[String]) -> bool {
    !urls.is_empty()
        && urls.iter().all(|u| {
            (u.starts_with("http://") || u.starts_with("https://"))
                && u.split("://").nth(1).is_some_and(|rest| rest.contains(':'))
        })
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let request = request.into_inner();
        if !valid_urls(&request.peer_ur_ls) {
            return Err(errors::bad_urls());
        }
        let existing = self.members();
        if existing
            .iter()
            .any(|m| m.peer_ur_ls.iter().any(|u| request.peer_ur_ls.contains(u)))
        {
            return Err(errors::peer_url_exists());
        }
        let id = ids::member_id(&request.peer_ur_ls, &self.node.token);
        if existing.iter().any(|m| m.id == id) {
            return Err(errors::member_exists());
        }
        // Unstarted members have no name yet, as in etcd.
        let member = Member {
            name: String::new(),
            peer_urls: request.peer_ur_ls.clone(),
            client_urls: Vec::new(),
        };
        // Always as a learner: a voter that has not started yet would count
        // against the quorum; a voter is promoted once it caught up (below).
        let change = MembershipChange::AddLearner { id, member };
        self.node.change_membership(change).await?;
        self.caught_up().await?;
        if !request.is_learner {
            tracing::info!(id = format!("{id:x}"), "member added as learner; promote it once started (`etcdctl member promote`), or it is promoted when it catches up");
            self.node.promote_when_caught_up(id);
        }
        let members = self.members();
        let added = members.iter().find(|m| m.id == id).cloned();
        Ok(Response::new(pb::MemberAddResponse {
            header: self.response_header(),
            member: added,
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let id = request.into_inner().id;
        if !self.members().iter().any(|m| m.id == id) {
            return Err(errors::member_not_found());
        }
        self.node
            .change_membership(MembershipChange::Remove { id })
            .await?;
        self.caught_up().await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: self.response_header(),
            members: self.members(),
        }))
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let request = request.into_inner();
        if !valid_urls(&request.peer_ur_ls) {
            return Err(errors::bad_urls());
        }
        let members = self.members();
        let Some(current) = members.iter().find(|m| m.id == request.id) else {
            return Err(errors::member_not_found());
        };
        if members.iter().any(|m| {
            m.id != request.id && m.peer_ur_ls.iter().any(|u| request.peer_ur_ls.contains(u))
        }) {
            return Err(errors::peer_url_exists());
        }
        self.node
            .change_membership(MembershipChange::UpdatePeerUrls {
                id: current.id,
                peer_urls: request.peer_ur_ls.clone(),
            })
            .await?;
        // Wait for this member to apply it, as etcd does; a read barrier
        // would ask the leader, which may be the member that just moved.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !self
            .members()
            .iter()
            .any(|m| m.id == request.id && m.peer_ur_ls == request.peer_ur_ls)
        {
            if tokio::time::Instant::now() > deadline {
                return Err(errors::timeout());
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tracing::info!(id = format!("{:x}", request.id), peer_urls = ?request.peer_ur_ls, "member peer URLs updated");
        Ok(Response::new(pb::MemberUpdateResponse {
            header: self.response_header(),
            members: self.members(),
        }))
    }

    async fn member_list(
        &self,
        _request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        // Linearizable, as etcd 3.5's: a change acknowledged by another
        // member is listed. Without a leader the local view is still
        // better than nothing for an operator looking at an outage.
        if let Err(status) = self.caught_up().await {
            tracing::debug!(%status, "member list: no read barrier; answering from this member's view");
        }
        Ok(Response::new(pb::MemberListResponse {
            header: self.response_header(),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let id = request.into_inner().id;
        let members = self.members();
        let Some(member) = members.iter().find(|m| m.id == id) else {
            return Err(errors::member_not_found());
        };
        if !member.is_learner {
            return Err(errors::not_learner());
        }
        self.node
            .change_membership(MembershipChange::Promote { id })
            .await?;
        self.caught_up().await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: self.response_header(),
            members: self.members(),
        }))
    }
}
