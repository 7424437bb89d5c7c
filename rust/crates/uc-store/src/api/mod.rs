//! etcd's v3 gRPC services on the client URLs, and the peer service.

pub mod auth;
pub mod cluster;
pub mod convert;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod peer;
pub mod watch;
