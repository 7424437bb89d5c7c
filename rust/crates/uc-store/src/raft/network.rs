//! Raft between members: openraft's messages postcard-encoded in the `Peer`
//! gRPC service on the peer URL (one HTTP/2 connection per peer).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Membership, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use uc_daemon::metrics::Histogram;
use uc_proto::ucpeer::peer_client::PeerClient;
use uc_proto::ucpeer::Payload;

use super::{Member, NodeId, TypeConfig};

/// Each member's first peer URL as the membership has it now (kept up to
/// date by the server), so a MemberUpdate reaches connections that openraft
/// opened before it.
pub type PeerUrls = Arc<RwLock<BTreeMap<NodeId, String>>>;

pub struct Network {
    pub peer_urls: PeerUrls,
    pub channels: PeerChannels,
    pub acks: Acks,
    /// Replication round trips: AppendEntries with entries, sent to answered.
    pub round_trips: Histogram,
}

/// For leader-lease reads: per follower, the send time of the newest
/// AppendEntries (replication or heartbeat) it accepted, and the vote it
/// carried. A follower that accepts one will not vote for anybody else for
/// openraft's leader lease (the max election timeout) after receiving it.
#[derive(Clone, Default)]
pub struct Acks(Arc<Mutex<BTreeMap<NodeId, Ack>>>);

/// The vote a follower accepted and when the message carrying it was sent.
type Ack = (Vote<NodeId>, Instant);

impl Acks {
    fn record(&self, target: NodeId, vote: Vote<NodeId>, sent: Instant) {
        let mut acks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match acks.get(&target) {
            Some((v, at)) if *v == vote && *at >= sent => {}
            _ => {
                acks.insert(target, (vote, sent));
            }
        }
    }

    /// Whether, in every configuration of `membership`, a quorum (counting
    /// `me` as acknowledging itself) accepted `vote` in a message sent at or
    /// after `since`.
    pub fn quorum_since(
        &self,
        me: NodeId,
        vote: &Vote<NodeId>,
        membership: &Membership<NodeId, Member>,
        since: Instant,
    ) -> bool {
        let acks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        membership.get_joint_config().iter().all(|voters| {
            let acked = voters
                .iter()
                .filter(|id| {
                    **id == me
                        || acks
                            .get(id)
                            .is_some_and(|(v, at)| v == vote && *at >= since)
                })
                .count();
            acked * 2 > voters.len()
        })
    }
}

/// Why there is no channel to a peer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChannelError {
    #[error("member {member} has no peer URL")]
    NoPeerUrl { member: String },
    #[error("bad peer URL {url}: {source}")]
    BadUrl {
        url: String,
        source: Arc<tonic::transport::Error>,
    },
    #[error("member {member}: {source}")]
    Member {
        member: String,
        source: Box<ChannelError>,
    },
}

/// One HTTP/2 connection per peer URL, shared by every client openraft asks
/// for: openraft 0.9 asks for a new one for each leadership check of a
/// linearizable read, and a connection each would mean a TCP handshake per
/// read round (and tens of thousands of sockets in TIME-WAIT under load).
#[derive(Clone, Default)]
pub struct PeerChannels(Arc<Mutex<BTreeMap<String, Channel>>>);

impl PeerChannels {
    pub fn get(&self, url: &str) -> Result<Channel, ChannelError> {
        let mut channels = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let channel = url_channel(url)?;
        channels.insert(url.to_owned(), channel.clone());
        Ok(channel)
    }

    /// The channel to a member's first peer URL.
    pub fn member(&self, member: &Member) -> Result<Channel, ChannelError> {
        let url = member
            .peer_urls
            .first()
            .ok_or_else(|| ChannelError::NoPeerUrl {
                member: member.name.clone(),
            })?;
        self.get(url).map_err(|e| ChannelError::Member {
            member: member.name.clone(),
            source: Box::new(e),
        })
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Self::Network {
        PeerConnection {
            target,
            client: self.channels.member(node).map(PeerClient::new),
            url: node.peer_urls.first().cloned().unwrap_or_default(),
            peer_urls: self.peer_urls.clone(),
            channels: self.channels.clone(),
            acks: self.acks.clone(),
            round_trips: self.round_trips.clone(),
        }
    }
}

/// A lazily connected channel (reconnects by itself after a failure).
fn url_channel(url: &str) -> Result<Channel, ChannelError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| ChannelError::BadUrl {
            url: url.to_owned(),
            source: Arc::new(e),
        })?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

pub struct PeerConnection {
    target: NodeId,
    client: Result<PeerClient<Channel>, ChannelError>,
    url: String,
    peer_urls: PeerUrls,
    channels: PeerChannels,
    acks: Acks,
    round_trips: Histogram,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Transport(String);

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &mut self,
        kind: Rpc,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let network = |msg: String| RPCError::Network(NetworkError::new(&Transport(msg)));
        let latest = self
            .peer_urls
            .read()
            .ok()
            .and_then(|urls| urls.get(&self.target).cloned());
        if let Some(latest) = latest.filter(|u| *u != self.url) {
            tracing::info!(target = self.target, from = %self.url, to = %latest, "peer URL changed; reconnecting");
            self.client = self.channels.get(&latest).map(PeerClient::new);
            self.url = latest;
        }
        let client = self.client.as_mut().map_err(|e| network(e.to_string()))?;
        let data = super::encode(request).map_err(|e| network(e.to_string()))?;
        let mut request = tonic::Request::new(Payload { data });
        request.set_timeout(option.hard_ttl());
        let reply = match kind {
            Rpc::AppendEntries => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::InstallSnapshot => client.install_snapshot(request).await,
        }
        .map_err(|status| network(format!("{}: {}", self.url, status.message())))?;
        let result: Result<Resp, RaftError<NodeId, E>> = super::decode(&reply.into_inner().data)
            .map_err(|e| network(format!("{}: undecodable reply: {e}", self.url)))?;
        result.map_err(|err| RPCError::RemoteError(RemoteError::new(self.target, err)))
    }
}

enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        let (vote, sent, replicates) = (rpc.vote, Instant::now(), !rpc.entries.is_empty());
        let response: AppendEntriesResponse<NodeId> =
            self.call(Rpc::AppendEntries, &rpc, &option).await?;
        if replicates {
            self.round_trips.observe(sent.elapsed().as_secs_f64());
        }
        // Every answer but HigherVote means the follower took the vote as
        // its leader's and restarted its lease (conflicts are about logs).
        if !matches!(response, AppendEntriesResponse::HigherVote(_)) {
            self.acks.record(self.target, vote, sent);
        }
        Ok(response)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Rpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use super::*;

    fn membership(configs: &[&[NodeId]]) -> Membership<NodeId, Member> {
        let configs: Vec<BTreeSet<NodeId>> = configs
            .iter()
            .map(|c| c.iter().copied().collect())
            .collect();
        let nodes: BTreeMap<NodeId, Member> = configs
            .iter()
            .flatten()
            .map(|id| (*id, Member::default()))
            .collect();
        Membership::new(configs, nodes)
    }

    #[test]
    fn a_lease_needs_a_quorum_of_fresh_acks_for_the_same_vote_in_every_config() {
        let acks = Acks::default();
        let vote = Vote::new_committed(3, 1);
        let start = Instant::now();
        let later = start + Duration::from_millis(100);
        let three = membership(&[&[1, 2, 3]]);
        // Only the leader itself.
        assert!(!acks.quorum_since(1, &vote, &three, start));
        // An ack for an older vote does not count.
        acks.record(2, Vote::new_committed(2, 2), later);
        assert!(!acks.quorum_since(1, &vote, &three, start));
        acks.record(2, vote, start);
        assert!(acks.quorum_since(1, &vote, &three, start));
        // Too old for a later `since`; an older send does not move it back.
        assert!(!acks.quorum_since(1, &vote, &three, later));
        acks.record(3, vote, later);
        acks.record(3, vote, start);
        assert!(acks.quorum_since(1, &vote, &three, later));
        // Joint consensus: the new config {3, 4, 5} has only 3 fresh.
        let joint = membership(&[&[1, 2, 3], &[3, 4, 5]]);
        assert!(!acks.quorum_since(1, &vote, &joint, later));
        acks.record(4, vote, later);
        assert!(acks.quorum_since(1, &vote, &joint, later));
        // A leader outside the config does not count itself.
        let without_me = membership(&[&[2, 3, 4, 5, 6]]);
        assert!(!acks.quorum_since(1, &vote, &without_me, later));
    }
}
