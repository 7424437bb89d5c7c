//! etcd's Lease service. Grants and revokes go through Raft; keep-alives and
//! TTLs are answered by the leader's clock, as in etcd.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use uc_proto::etcdserverpb as pb;
use uc_proto::etcdserverpb::lease_server::Lease;

use crate::errors;
use crate::node::Node;
use crate::state::{Command, Reply};

pub struct LeaseService {
    pub node: Arc<Node>,
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let request = request.into_inner();
        let applied = self
            .node
            .write(Command::LeaseGrant {
                id: request.id,
                ttl: request.ttl.max(self.node.min_lease_ttl()),
            })
            .await?;
        match applied.reply {
            Reply::LeaseGrant { id, ttl } => Ok(Response::new(pb::LeaseGrantResponse {
                header: self.node.header(applied.revision),
                id,
                ttl,
                error: String::new(),
            })),
            other => Err(errors::internal(format!("grant answered {other:?}"))),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let id = request.into_inner().id;
        let applied = self.node.write(Command::LeaseRevoke { id }).await?;
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: self.node.header(applied.revision),
        }))
    }

    type LeaseKeepAliveStream = ReceiverStream<Result<pb::LeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let (out, rx) = mpsc::channel(64);
        let node = self.node.clone();
        tokio::spawn(async move {
            while let Ok(Some(request)) = inbound.message().await {
                let response = match node.keep_alive(request.id).await {
                    // etcd answers an unknown lease with TTL 0 on the stream.
                    Ok(ttl) => Ok(pb::LeaseKeepAliveResponse {
                        header: node.current_header(),
                        id: request.id,
                        ttl: ttl.max(0),
                    }),
                    Err(status) => Err(status),
                };
                let failed = response.is_err();
                if out.send(response).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let request = request.into_inner();
        self.node.read_barrier().await?;
        let ttl = self.node.time_to_live(request.id).await?;
        let (granted, keys) = {
            let machine = self.node.shared.read();
            match machine.state.leases.get(&request.id) {
                Some(lease) => (
                    lease.ttl,
                    if request.keys {
                        lease.keys.iter().cloned().collect()
                    } else {
                        Vec::new()
                    },
                ),
                // etcd answers an unknown lease with TTL -1, not an error.
                None => {
                    return Ok(Response::new(pb::LeaseTimeToLiveResponse {
                        header: self.node.current_header(),
                        id: request.id,
                        ttl: -1,
                        ..Default::default()
                    }))
                }
            }
        };
        Ok(Response::new(pb::LeaseTimeToLiveResponse {
            header: self.node.current_header(),
            id: request.id,
            ttl,
            granted_ttl: granted,
            keys,
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        self.node.read_barrier().await?;
        let leases = self
            .node
            .shared
            .read()
            .state
            .leases
            .keys()
            .map(|id| pb::LeaseStatus { id: *id })
            .collect();
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: self.node.current_header(),
            leases,
        }))
    }
}
