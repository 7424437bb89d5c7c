//! Between etcd's protobuf messages and the keyspace's types.

use uc_proto::etcdserverpb as pb;
use uc_proto::etcdserverpb::{compare, range_request, request_op, response_op};
use uc_proto::mvccpb;

use crate::mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event,
    EventKind, KeyValue, PutRequest, PutResponse, RangeOptions, RangeRequest, RangeResult,
    RequestOp, ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse,
};

pub fn kv(kv: &KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key.clone(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value.clone(),
        lease: kv.lease,
    }
}

pub fn event(event: &Event, with_prev: bool) -> mvccpb::Event {
    mvccpb::Event {
        r#type: match event.kind {
            EventKind::Put => mvccpb::event::EventType::Put as i32,
            EventKind::Delete => mvccpb::event::EventType::Delete as i32,
        },
        kv: Some(kv(&event.kv)),
        prev_kv: if with_prev {
            event.prev_kv.as_ref().map(kv)
        } else {
            None
        },
    }
}

pub fn range_request(r: &pb::RangeRequest) -> RangeRequest {
    let sort_order = match range_request::SortOrder::try_from(r.sort_order) {
        Ok(range_request::SortOrder::Ascend) => SortOrder::Ascend,
        Ok(range_request::SortOrder::Descend) => SortOrder::Descend,
        _ => SortOrder::None,
    };
    let sort_target = match range_request::SortTarget::try_from(r.sort_target) {
        Ok(range_request::SortTarget::Version) => SortTarget::Version,
        Ok(range_request::SortTarget::Create) => SortTarget::Create,
        Ok(range_request::SortTarget::Mod) => SortTarget::Mod,
        Ok(range_request::SortTarget::Value) => SortTarget::Value,
        _ => SortTarget::Key,
    };
    RangeRequest {
        key: r.key.clone(),
        range_end: r.range_end.clone(),
        options: RangeOptions {
            revision: r.revision,
            limit: r.limit.max(0) as usize,
            count_only: r.count_only,
            keys_only: r.keys_only,
            sort_order,
            sort_target,
            min_mod_revision: r.min_mod_revision,
            max_mod_revision: r.max_mod_revision,
            min_create_revision: r.min_create_revision,
            max_create_revision: r.max_create_revision,
        },
    }
}

pub fn range_response(
    result: &RangeResult,
    header: Option<pb::ResponseHeader>,
) -> pb::RangeResponse {
    pb::RangeResponse {
        header,
        kvs: result.kvs.iter().map(kv).collect(),
        more: result.more,
        count: result.count as i64,
    }
}

pub fn put_request(r: &pb::PutRequest) -> PutRequest {
    PutRequest {
        key: r.key.clone(),
        value: r.value.clone(),
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

pub fn put_response(r: &PutResponse, header: Option<pb::ResponseHeader>) -> pb::PutResponse {
    pb::PutResponse {
        header,
        prev_kv: r.prev_kv.as_ref().map(kv),
    }
}

pub fn delete_request(r: &pb::DeleteRangeRequest) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: r.key.clone(),
        range_end: r.range_end.clone(),
        prev_kv: r.prev_kv,
    }
}

pub fn delete_response(
    r: &DeleteRangeResponse,
    header: Option<pb::ResponseHeader>,
) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header,
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.iter().map(kv).collect(),
    }
}

fn compare_request(c: &pb::Compare) -> Compare {
    let result = match compare::CompareResult::try_from(c.result) {
        Ok(compare::CompareResult::Greater) => CompareResult::Greater,
        Ok(compare::CompareResult::Less) => CompareResult::Less,
        Ok(compare::CompareResult::NotEqual) => CompareResult::NotEqual,
        _ => CompareResult::Equal,
    };
    let union = c.target_union.clone();
    let target = match compare::CompareTarget::try_from(c.target) {
        Ok(compare::CompareTarget::Create) => CompareTarget::CreateRevision(match union {
            Some(compare::TargetUnion::CreateRevision(v)) => v,
            _ => 0,
        }),
        Ok(compare::CompareTarget::Mod) => CompareTarget::ModRevision(match union {
            Some(compare::TargetUnion::ModRevision(v)) => v,
            _ => 0,
        }),
        Ok(compare::CompareTarget::Value) => CompareTarget::Value(match union {
            Some(compare::TargetUnion::Value(v)) => v,
            _ => Vec::new(),
        }),
        Ok(compare::CompareTarget::Lease) => CompareTarget::Lease(match union {
            Some(compare::TargetUnion::Lease(v)) => v,
            _ => 0,
        }),
        _ => CompareTarget::Version(match union {
            Some(compare::TargetUnion::Version(v)) => v,
            _ => 0,
        }),
    };
    Compare {
        key: c.key.clone(),
        range_end: c.range_end.clone(),
        result,
        target,
    }
}

fn request_ops(ops: &[pb::RequestOp]) -> Vec<RequestOp> {
    ops.iter()
        .filter_map(|op| op.request.as_ref())
        .map(|request| match request {
            request_op::Request::RequestRange(r) => RequestOp::Range(range_request(r)),
            request_op::Request::RequestPut(r) => RequestOp::Put(put_request(r)),
            request_op::Request::RequestDeleteRange(r) => RequestOp::DeleteRange(delete_request(r)),
            request_op::Request::RequestTxn(r) => RequestOp::Txn(txn_request(r)),
        })
        .collect()
}

pub fn txn_request(r: &pb::TxnRequest) -> TxnRequest {
    TxnRequest {
        compare: r.compare.iter().map(compare_request).collect(),
        success: request_ops(&r.success),
        failure: request_ops(&r.failure),
    }
}

pub fn txn_response(r: &TxnResponse, header: Option<pb::ResponseHeader>) -> pb::TxnResponse {
    // Inner responses carry a header with the revision only, as etcd's.
    let inner = Some(pb::ResponseHeader {
        revision: header.as_ref().map_or(0, |h| h.revision),
        ..Default::default()
    });
    pb::TxnResponse {
        header,
        succeeded: r.succeeded,
        responses: r
            .responses
            .iter()
            .map(|response| pb::ResponseOp {
                response: Some(match response {
                    ResponseOp::Range(result) => {
                        response_op::Response::ResponseRange(range_response(result, inner))
                    }
                    ResponseOp::Put(put) => {
                        response_op::Response::ResponsePut(put_response(put, inner))
                    }
                    ResponseOp::DeleteRange(delete) => {
                        response_op::Response::ResponseDeleteRange(delete_response(delete, inner))
                    }
                    ResponseOp::Txn(txn) => {
                        response_op::Response::ResponseTxn(txn_response(txn, inner))
                    }
                }),
            })
            .collect(),
    }
}
