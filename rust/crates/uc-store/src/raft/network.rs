//! Raft between members: openraft's messages postcard-encoded in the `Peer`
//! gRPC service on the peer URL (one HTTP/2 connection per peer).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
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
}

/// One HTTP/2 connection per peer URL, shared by every client openraft asks
/// for: openraft 0.9 asks for a new one for each leadership check of a
/// linearizable read, and a connection each would mean a TCP handshake per
/// read round (and tens of thousands of sockets in TIME-WAIT under load).
#[derive(Clone, Default)]
pub struct PeerChannels(Arc<Mutex<BTreeMap<String, Channel>>>);

impl PeerChannels {
    pub fn get(&self, url: &str) -> Result<Channel, String> {
        let mut channels = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let channel = url_channel(url)?;
        channels.insert(url.to_owned(), channel.clone());
        Ok(channel)
    }

    /// The channel to a member's first peer URL.
    pub fn member(&self, member: &Member) -> Result<Channel, String> {
        let url = member
            .peer_urls
            .first()
            .ok_or_else(|| format!("member {} has no peer URL", member.name))?;
        self.get(url)
            .map_err(|e| format!("member {}: {e}", member.name))
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
        }
    }
}

/// A lazily connected channel (reconnects by itself after a failure).
fn url_channel(url: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("bad peer URL {url}: {e}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

pub struct PeerConnection {
    target: NodeId,
    client: Result<PeerClient<Channel>, String>,
    url: String,
    peer_urls: PeerUrls,
    channels: PeerChannels,
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
        let client = self.client.as_mut().map_err(|e| network(e.clone()))?;
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
        self.call(Rpc::AppendEntries, &rpc, &option).await
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
