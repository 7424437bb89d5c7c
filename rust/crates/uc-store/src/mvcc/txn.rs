//! etcd's Txn: compares evaluated against the store as it is, then the
//! success or failure ops, all as one write transaction (one revision when
//! anything is written), with reads inside it seeing its earlier writes.

use std::collections::BTreeSet;

use super::keyspace::{Keyspace, Pending};
use super::{KeyValue, MvccError, RangeOptions, RangeResult};

/// etcd's --max-txn-ops default.
pub const MAX_TXN_OPS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
    Value(Vec<u8>),
    Lease(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: Vec<u8>,
    /// etcd's range conventions; every key in the range must satisfy the compare.
    pub range_end: Vec<u8>,
    pub result: CompareResult,
    pub target: CompareTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOp {
    Range {
        key: Vec<u8>,
        range_end: Vec<u8>,
        options: RangeOptions,
    },
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: i64,
    },
    DeleteRange {
        key: Vec<u8>,
        range_end: Vec<u8>,
    },
    Txn(TxnRequest),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseOp {
    Range(RangeResult),
    Put {
        prev_kv: Option<KeyValue>,
    },
    DeleteRange {
        deleted: i64,
        prev_kvs: Vec<KeyValue>,
    },
    Txn(TxnResponse),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
    /// The store's revision after the transaction.
    pub revision: i64,
}

/// Errors carry etcd's texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error(transparent)]
    Mvcc(#[from] MvccError),
}

/// Refuses what etcd refuses before executing anything: too many ops, and a
/// key written twice in one branch (puts, and puts inside deleted ranges),
/// nested transactions included.
pub fn check(request: &TxnRequest) -> Result<(), TxnError> {
    if [
        request.compare.len(),
        request.success.len(),
        request.failure.len(),
    ]
    .iter()
    .any(|n| *n > MAX_TXN_OPS)
    {
        return Err(TxnError::TooManyOps);
    }
    for branch in [&request.success, &request.failure] {
        check_branch(branch, &mut BTreeSet::new(), &mut Vec::new())?;
    }
    Ok(())
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        end => key >= start && key < end,
    }
}

fn check_branch(
    ops: &[RequestOp],
    puts: &mut BTreeSet<Vec<u8>>,
    deletes: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<(), TxnError> {
    for op in ops {
        match op {
            RequestOp::Put { key, .. } => {
                if !puts.insert(key.clone()) || deletes.iter().any(|(s, e)| in_range(key, s, e)) {
                    return Err(TxnError::DuplicateKey);
                }
            }
            RequestOp::DeleteRange { key, range_end } => {
                if puts.iter().any(|p| in_range(p, key, range_end)) {
                    return Err(TxnError::DuplicateKey);
                }
                deletes.push((key.clone(), range_end.clone()));
            }
            RequestOp::Txn(nested) => {
                check(nested)?;
                for branch in [&nested.success, &nested.failure] {
                    check_branch(branch, &mut puts.clone(), &mut deletes.clone())?;
                }
            }
            RequestOp::Range { .. } => {}
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
    pub fn txn(&mut self, request: &TxnRequest) -> Result<TxnResponse, TxnError> {
        self.txn_with_events(request).map(|(response, _)| response)
    }

    /// Like `txn`, also returning the events it produced (for watchers).
    pub fn txn_with_events(
        &mut self,
        request: &TxnRequest,
    ) -> Result<(TxnResponse, Vec<super::Event>), TxnError> {
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

    fn compare_holds(&self, pending: &Pending, compare: &Compare) -> bool {
        let all = RangeOptions::default();
        let kvs = self
            .range_pending(pending, &compare.key, &compare.range_end, all)
            .map(|r| r.kvs)
            .unwrap_or_default();
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
    ) -> Result<(bool, Vec<ResponseOp>), TxnError> {
        let succeeded = request
            .compare
            .iter()
            .all(|c| self.compare_holds(pending, c));
        let ops = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range {
                    key,
                    range_end,
                    options,
                } => ResponseOp::Range(self.range_pending(pending, key, range_end, *options)?),
                RequestOp::Put { key, value, lease } => ResponseOp::Put {
                    prev_kv: pending.put(self, key, value, *lease),
                },
                RequestOp::DeleteRange { key, range_end } => {
                    let prev_kvs = pending.delete(self, key, range_end);
                    ResponseOp::DeleteRange {
                        deleted: prev_kvs.len() as i64,
                        prev_kvs,
                    }
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
}
