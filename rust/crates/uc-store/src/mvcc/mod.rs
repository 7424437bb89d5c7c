//! Multi-version key space with etcd's semantics: one global revision that a
//! write transaction bumps exactly once, per-key create/mod revision and
//! version, historical reads, compaction, and the events a watch replays.
//! Deterministic: the same writes in the same order give the same state, as a
//! Raft state machine needs; `Keyspace::snapshot`/`Keyspace::restore` give it
//! the state as plain data.

mod keyspace;

pub use keyspace::{
    Event, EventKind, KeyValue, Keyspace, MvccError, RangeOptions, RangeResult, SortOrder,
    SortTarget, Write, VERSION_OVERHEAD,
};

mod txn;

pub use txn::{
    check as check_txn, Compare, CompareResult, CompareTarget, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RequestError, RequestOp,
    ResponseOp, TxnRequest, TxnResponse, MAX_TXN_OPS,
};

mod snapshot;

pub use snapshot::{Record, Snapshot, SnapshotError};

mod watch;

pub use watch::WatchFilter;
