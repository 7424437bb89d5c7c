//! Protobuf APIs. `etcdserverpb`/`mvccpb`/`authpb` are etcd 3.4's v3 API
//! as generated from its own protos (sibling modules, as the generated code
//! refers to `super::mvccpb`); `ucpeer` is uc-store's peer protocol.

#![allow(clippy::all, clippy::unwrap_used)]

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

pub mod authpb {
    tonic::include_proto!("authpb");
}

pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

pub mod ucpeer {
    tonic::include_proto!("ucpeer");
}
