//! etcd's KV service.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};
use uc_proto::etcdserverpb as pb;
use uc_proto::etcdserverpb::kv_server::Kv;

use super::convert;
use crate::errors;
use crate::node::Node;
use crate::state::{Command, Reply};

/// etcd's --max-request-bytes default.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

pub struct KvService {
    pub node: Arc<Node>,
}

fn check_size(request: &impl Message) -> Result<(), Status> {
    if request.encoded_len() > MAX_REQUEST_BYTES {
        Err(errors::request_too_large())
    } else {
        Ok(())
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let request = request.into_inner();
        if request.key.is_empty() {
            return Err(errors::empty_key());
        }
        if !request.serializable {
            self.node.read_barrier().await?;
        }
        let range = convert::range_request(&request);
        let machine = self.node.shared.read();
        let result = machine
            .state
            .keyspace
            .range(&range.key, &range.range_end, range.options)
            .map_err(|e| errors::mvcc(&e))?;
        let revision = machine.state.keyspace.revision();
        drop(machine);
        Ok(Response::new(convert::range_response(
            &result,
            self.node.header(revision),
        )))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let request = request.into_inner();
        check_size(&request)?;
        if request.key.is_empty() {
            return Err(errors::empty_key());
        }
        let applied = self
            .node
            .write(Command::Put(convert::put_request(&request)))
            .await?;
        match &applied.reply {
            Reply::Put(put) => Ok(Response::new(convert::put_response(
                put,
                self.node.header(applied.revision),
            ))),
            other => Err(errors::internal(format!("put answered {other:?}"))),
        }
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let request = request.into_inner();
        if request.key.is_empty() {
            return Err(errors::empty_key());
        }
        let applied = self
            .node
            .write(Command::DeleteRange(convert::delete_request(&request)))
            .await?;
        match &applied.reply {
            Reply::DeleteRange(delete) => Ok(Response::new(convert::delete_response(
                delete,
                self.node.header(applied.revision),
            ))),
            other => Err(errors::internal(format!("delete answered {other:?}"))),
        }
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let request = request.into_inner();
        check_size(&request)?;
        let txn = convert::txn_request(&request);
        // Refused before it reaches the log, as etcd does.
        crate::mvcc::check_txn(&txn).map_err(|e| errors::request(&e))?;
        let applied = self.node.write(Command::Txn(txn)).await?;
        match &applied.reply {
            Reply::Txn(txn) => Ok(Response::new(convert::txn_response(
                txn,
                self.node.header(applied.revision),
            ))),
            other => Err(errors::internal(format!("txn answered {other:?}"))),
        }
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let request = request.into_inner();
        let applied = self
            .node
            .write(Command::Compact {
                revision: request.revision,
            })
            .await?;
        Ok(Response::new(pb::CompactionResponse {
            header: self.node.header(applied.revision),
        }))
    }
}
