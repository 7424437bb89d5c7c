//! The peer service: Raft RPCs into openraft, and requests followers
//! forward to the leader.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};
use uc_proto::ucpeer::peer_server::Peer;
use uc_proto::ucpeer::Payload;

use crate::node::{Failure, Forward, Forwarded, Node};

pub struct PeerService {
    pub node: Arc<Node>,
}

fn decode<T: DeserializeOwned>(request: Request<Payload>) -> Result<T, Status> {
    crate::raft::decode(&request.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable peer message: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<Payload>, Status> {
    crate::raft::encode(value)
        .map(|data| Response::new(Payload { data }))
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let result = self.node.raft.append_entries(decode(request)?).await;
        encode(&result)
    }

    async fn vote(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        // Just started: this member may have acknowledged a leader whose
        // lease it no longer remembers (see `Node::votes_from`).
        let wait = self
            .node
            .votes_from
            .saturating_duration_since(std::time::Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let result = self.node.raft.vote(decode(request)?).await;
        encode(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<Payload>,
    ) -> Result<Response<Payload>, Status> {
        let result = self.node.raft.install_snapshot(decode(request)?).await;
        encode(&result)
    }

    async fn forward(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let forward: Forward = decode(request)?;
        let result: Result<Forwarded, Failure> = self
            .node
            .serve_forward(forward)
            .await
            .map_err(Failure::from);
        encode(&result)
    }
}
