//! etcd's KV requests: Put, DeleteRange and Txn. A Txn's compares, nested
//! ones included, see the store as it was before the transaction; then the
//! success or failure ops run as one write transaction (one revision when
//! anything is written), with reads inside it seeing its earlier writes.
//! Requests etcd refuses are refused before anything is written.

use std::collections::BTreeSet;

use super::keyspace::{
    in_range, Event, KeyValue, Keyspace, MvccError, Pending, RangeOptions, RangeResult,
};

/// etcd's --max-txn-ops default.
pub const MAX_TXN_OPS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CompareResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CompareTarget {
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    Lease(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Compare {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// etcd's range conventions; every key in the range must satisfy the compare.
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    pub result: CompareResult,
    pub target: CompareTarget,
}

/// etcd's `RangeRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RangeRequest {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// etcd's range conventions (see `Keyspace::range`).
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    pub options: RangeOptions,
}

/// etcd's `PutRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PutRequest {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Lease id, 0 for none.
    pub lease: i64,
    /// Return the key's value before the put.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist; `value` must be empty).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist; `lease` must be 0).
    pub ignore_lease: bool,
}

/// etcd's `DeleteRangeRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeleteRangeRequest {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// etcd's range conventions (see `Keyspace::range`).
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    /// Return the deleted values.
    pub prev_kv: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PutResponse {
    /// Set when asked for and the key existed.
    pub prev_kv: Option<KeyValue>,
    /// The store's revision after the put.
    pub revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeleteRangeResponse {
    pub deleted: i64,
    /// The deleted values, when asked for.
    pub prev_kvs: Vec<KeyValue>,
    /// The store's revision after the delete.
    pub revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ResponseOp {
    Range(RangeResult),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TxnResponse {
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
    /// The store's revision after the transaction (0 in a nested one, as etcd).
    pub revision: i64,
}

/// A refused request; nothing was written. The texts are etcd's: clients
/// match on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum RequestError {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error(transparent)]
    Mvcc(#[from] MvccError),
}

/// Refuses what etcd's API layer refuses before executing anything: empty
/// keys, `ignore_value`/`ignore_lease` with a value/lease, too many ops, and
/// a key written twice in one branch (puts, and puts inside deleted ranges),
/// nested transactions included.
pub fn check(request: &TxnRequest) -> Result<(), RequestError> {
    if [
        request.compare.len(),
        request.success.len(),
        request.failure.len(),
    ]
    .iter()
    .any(|n| *n > MAX_TXN_OPS)
    {
        return Err(RequestError::TooManyOps);
    }
    for op in request.success.iter().chain(&request.failure) {
        match op {
            RequestOp::Range(range) => check_key(&range.key)?,
            RequestOp::Put(put) => check_put(put)?,
            RequestOp::DeleteRange(delete) => check_key(&delete.key)?,
            RequestOp::Txn(nested) => check(nested)?,
        }
    }
    for branch in [&request.success, &request.failure] {
        check_branch(branch, &mut BTreeSet::new(), &mut Vec::new())?;
    }
    Ok(())
}

fn check_key(key: &[u8]) -> Result<(), RequestError> {
    if key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    Ok(())
}

fn check_put(put: &PutRequest) -> Result<(), RequestError> {
    check_key(&put.key)?;
    if put.ignore_value && !put.value.is_empty() {
        return Err(RequestError::ValueProvided);
    }
    if put.ignore_lease && put.lease != 0 {
        return Err(RequestError::LeaseProvided);
    }
    Ok(())
}

fn check_branch(
    ops: &[RequestOp],
    puts: &mut BTreeSet<Vec<u8>>,
    deletes: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<(), RequestError> {
    for op in ops {
        match op {
            RequestOp::Put(PutRequest { key, .. }) => {
                if !puts.insert(key.clone()) || deletes.iter().any(|(s, e)| in_range(key, s, e)) {
                    return Err(RequestError::DuplicateKey);
                }
            }
            RequestOp::DeleteRange(DeleteRangeRequest { key, range_end, .. }) => {
                if puts.iter().any(|p| in_range(p, key, range_end)) {
                    return Err(RequestError::DuplicateKey);
                }
                deletes.push((key.clone(), range_end.clone()));
            }
            RequestOp::Txn(nested) => {
                // Either branch may run: later ops must avoid the writes of
                // both, but the two branches may write the same key.
                let (outer_puts, outer_deletes) = (puts.clone(), deletes.clone());
                for branch in [&nested.success, &nested.failure] {
                    let (mut branch_puts, mut branch_deletes) =
                        (outer_puts.clone(), outer_deletes.clone());
                    check_branch(branch, &mut branch_puts, &mut branch_deletes)?;
                    puts.append(&mut branch_puts);
                    deletes.extend(branch_deletes.drain(outer_deletes.len()..));
                }
            }
            RequestOp::Range(_) => {}
        }
    }
    Ok(())
}

fn holds(kv: &KeyValue, compare: &Compare) -> bool {
    use std::cmp::Ordering;
    let ordering = match &compare.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::CreateRevision(v) => kv.create_revision.cmp(v),
        CompareTarget::ModRevision(v) => kv.mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
    };
    match compare.result {
        CompareResult::Equal => ordering == Ordering::Equal,
        CompareResult::Greater => ordering == Ordering::Greater,
        CompareResult::Less => ordering == Ordering::Less,
        CompareResult::NotEqual => ordering != Ordering::Equal,
    }
}

impl Keyspace {
    /// Runs a transaction; on error nothing was written.
    pub fn txn(&mut self, request: &TxnRequest) -> Result<TxnResponse, RequestError> {
        self.txn_with_events(request).map(|(response, _)| response)
    }

    /// Like `txn`, also returning the events it produced (for watchers).
    pub fn txn_with_events(
        &mut self,
        request: &TxnRequest,
    ) -> Result<(TxnResponse, Vec<Event>), RequestError> {
        check(request)?;
        let mut pending = self.begin();
        let (succeeded, responses) = match self.run(&mut pending, request) {
            Ok(done) => done,
            Err(err) => {
                self.roll_back(pending);
                return Err(err);
            }
        };
        let (revision, events) = self.commit(pending);
        Ok((
            TxnResponse {
                succeeded,
                responses,
                revision,
            },
            events,
        ))
    }

    /// etcd's Put: one new revision.
    pub fn put(&mut self, request: &PutRequest) -> Result<(PutResponse, Vec<Event>), RequestError> {
        check_put(request)?;
        let mut pending = self.begin();
        // A put fails (key not found) before it writes anything.
        let mut response = self.run_put(&mut pending, request)?;
        let (revision, events) = self.commit(pending);
        response.revision = revision;
        Ok((response, events))
    }

    /// etcd's DeleteRange: one new revision when it deletes anything.
    pub fn delete_range(
        &mut self,
        request: &DeleteRangeRequest,
    ) -> Result<(DeleteRangeResponse, Vec<Event>), RequestError> {
        check_key(&request.key)?;
        let mut pending = self.begin();
        let mut response = self.run_delete(&mut pending, request);
        let (revision, events) = self.commit(pending);
        response.revision = revision;
        Ok((response, events))
    }

    /// etcd evaluates every compare, nested ones included, against the store
    /// as it was before the transaction: its own writes are invisible here.
    fn compare_holds(&self, compare: &Compare) -> bool {
        let kvs = self.range_committed(&compare.key, &compare.range_end);
        if kvs.is_empty() {
            // A missing key compares as zeroes, except on its value.
            return !matches!(compare.target, CompareTarget::Value(_))
                && holds(&KeyValue::tombstone(compare.key.clone(), 0), compare);
        }
        kvs.iter().all(|kv| holds(kv, compare))
    }

    fn run(
        &mut self,
        pending: &mut Pending,
        request: &TxnRequest,
    ) -> Result<(bool, Vec<ResponseOp>), RequestError> {
        let succeeded = request.compare.iter().all(|c| self.compare_holds(c));
        let ops = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(range) => ResponseOp::Range(self.range_pending(
                    pending,
                    &range.key,
                    &range.range_end,
                    range.options,
                )?),
                RequestOp::Put(put) => ResponseOp::Put(self.run_put(pending, put)?),
                RequestOp::DeleteRange(delete) => {
                    ResponseOp::DeleteRange(self.run_delete(pending, delete))
                }
                RequestOp::Txn(nested) => {
                    let (succeeded, responses) = self.run(pending, nested)?;
                    ResponseOp::Txn(TxnResponse {
                        succeeded,
                        responses,
                        revision: 0,
                    })
                }
            });
        }
        Ok((succeeded, responses))
    }

    fn run_put(
        &mut self,
        pending: &mut Pending,
        put: &PutRequest,
    ) -> Result<PutResponse, RequestError> {
        let (mut value, mut lease) = (&put.value, put.lease);
        if put.ignore_value || put.ignore_lease {
            // Checked against the store before the txn, as etcd does; no
            // earlier op of the txn can have written the key (duplicate check).
            let current = self
                .get_committed(&put.key)
                .ok_or(RequestError::KeyNotFound)?;
            if put.ignore_value {
                value = &current.value;
            }
            if put.ignore_lease {
                lease = current.lease;
            }
        }
        let value = value.clone();
        let prev = pending.put(self, &put.key, &value, lease);
        Ok(PutResponse {
            prev_kv: if put.prev_kv { prev } else { None },
            revision: pending.revision(self),
        })
    }

    fn run_delete(
        &mut self,
        pending: &mut Pending,
        delete: &DeleteRangeRequest,
    ) -> DeleteRangeResponse {
        let prev_kvs = pending.delete(self, &delete.key, &delete.range_end);
        DeleteRangeResponse {
            deleted: prev_kvs.len() as i64,
            prev_kvs: if delete.prev_kv { prev_kvs } else { Vec::new() },
            revision: pending.revision(self),
        }
    }
}
