//! Multi-version key space with etcd's semantics: one global revision that a
//! write transaction bumps exactly once, per-key create/mod revision and
//! version, historical reads, compaction, and the events a watch replays.
//! Deterministic: the same writes in the same order give the same state, as a
//! Raft state machine needs.

mod keyspace;

pub use keyspace::{
    Event, EventKind, KeyValue, Keyspace, MvccError, RangeOptions, RangeResult, Write,
};

mod txn;

pub use txn::{
    check as check_txn, Compare, CompareResult, CompareTarget, RequestOp, ResponseOp, TxnError,
    TxnRequest, TxnResponse, MAX_TXN_OPS,
};
