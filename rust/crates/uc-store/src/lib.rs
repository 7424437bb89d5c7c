//! uc-store: a Raft-replicated key-value store that speaks etcd's v3 API.
//!
//! Implemented so far: `mvcc`, the multi-version key space with etcd's
//! revision semantics, as deterministic logic without I/O. The Raft log and
//! state machine (openraft + redb), the gRPC services and the daemon build on
//! it.

pub mod mvcc;
