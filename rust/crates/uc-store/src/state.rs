//! The replicated state machine: the MVCC keyspace plus leases and alarms.
//! `apply` is deterministic: every member applies the same commands in the
//! same order and ends in the same state. Time is not part of it: lease
//! expiry is decided by the leader (see `crate::lease`), which proposes the
//! revoke.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::lease::{Lease, MAX_LEASE_TTL};
use crate::mvcc::{
    DeleteRangeRequest, DeleteRangeResponse, Event, EventKind, Keyspace, MvccError, PutRequest,
    PutResponse, RequestError, RequestOp, TxnRequest, TxnResponse, Write, VERSION_OVERHEAD,
};

/// A write, as proposed through Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact {
        revision: i64,
    },
    /// `id` 0: the state machine picks one from the log index.
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    Alarm {
        action: AlarmAction,
        member: u64,
    },
    /// Several proposals in one log entry (the leader batches concurrent
    /// ones); each is applied at its own revision.
    Batch(Vec<Command>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmAction {
    Activate,
    Deactivate,
}

/// What applying a command gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Raft's own entries (blank, membership).
    None,
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact,
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    LeaseRevoke,
    /// Members with an active NOSPACE alarm.
    Alarms(Vec<u64>),
    Error(ApplyError),
    /// One per command of a `Command::Batch`.
    Batch(Vec<Applied>),
}

/// A refused command; nothing changed. Texts are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ApplyError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
}

impl From<MvccError> for ApplyError {
    fn from(err: MvccError) -> Self {
        ApplyError::Request(RequestError::Mvcc(err))
    }
}

/// A command's result with the store revision after it (for headers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub revision: i64,
    pub reply: Reply,
}

/// Changes applied at one revision, in order; `reset` when the state was
/// replaced by a snapshot (watchers re-read from the keyspace).
#[derive(Debug, Clone)]
pub struct Changes {
    pub revision: i64,
    pub events: Vec<Event>,
    pub reset: bool,
}

/// The state machine's data.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub keyspace: Keyspace,
    pub leases: BTreeMap<i64, Lease>,
    /// Members that raised NOSPACE.
    pub nospace: BTreeSet<u64>,
    /// Bytes the retained versions take (see `Keyspace::retained_bytes`).
    pub size: u64,
    /// Revisions (main, sub) that compactions dropped since the state
    /// machine last took them (it drops them from its database too).
    pub(crate) compacted_away: Vec<(i64, i64)>,
}

/// `State` as plain data (Raft snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSnapshot {
    pub keyspace: crate::mvcc::Snapshot,
    pub leases: Vec<Lease>,
    pub nospace: Vec<u64>,
}

impl State {
    pub fn snapshot(&self) -> StateSnapshot {
        StateSnapshot {
            keyspace: self.keyspace.snapshot(),
            leases: self.leases.values().cloned().collect(),
            nospace: self.nospace.iter().copied().collect(),
        }
    }

    pub fn restore(snapshot: &StateSnapshot) -> Result<State, crate::mvcc::SnapshotError> {
        let keyspace = Keyspace::restore(&snapshot.keyspace)?;
        let size = keyspace.retained_bytes();
        Ok(State {
            keyspace,
            leases: snapshot.leases.iter().map(|l| (l.id, l.clone())).collect(),
            nospace: snapshot.nospace.iter().copied().collect(),
            size,
            compacted_away: Vec::new(),
        })
    }

    /// Applies one command at Raft log index `index`; returns the reply and
    /// the events watchers see.
    pub fn apply(&mut self, index: u64, command: &Command) -> (Applied, Vec<Event>) {
        if let Command::Batch(commands) = command {
            // Each at its own revision, as if proposed one by one.
            let mut items = Vec::new();
            let mut events = Vec::new();
            for command in commands {
                let (applied, more) = self.apply(index, command);
                items.push(applied);
                events.extend(more);
            }
            let revision = self.keyspace.revision();
            return (
                Applied {
                    revision,
                    reply: Reply::Batch(items),
                },
                events,
            );
        }
        let result = match command {
            Command::Put(put) => self.put(put),
            Command::DeleteRange(delete) => self
                .keyspace
                .delete_range(delete)
                .map(|(r, events)| (Reply::DeleteRange(r), events))
                .map_err(ApplyError::from),
            Command::Txn(txn) => self.txn(txn),
            Command::Compact { revision } => self.compact(*revision),
            Command::LeaseGrant { id, ttl } => self.grant(index, *id, *ttl),
            Command::LeaseRevoke { id } => self.revoke(*id),
            Command::Alarm { action, member } => {
                match action {
                    AlarmAction::Activate => self.nospace.insert(*member),
                    AlarmAction::Deactivate => self.nospace.remove(member),
                };
                Ok((
                    Reply::Alarms(self.nospace.iter().copied().collect()),
                    vec![],
                ))
            }
            // Handled above.
            Command::Batch(_) => Ok((Reply::Batch(Vec::new()), Vec::new())),
        };
        let (reply, events) = match result {
            Ok(done) => done,
            Err(err) => (Reply::Error(err), Vec::new()),
        };
        self.account(&events);
        let applied = Applied {
            revision: self.keyspace.revision(),
            reply,
        };
        (applied, events)
    }

    fn put(&mut self, put: &PutRequest) -> Result<(Reply, Vec<Event>), ApplyError> {
        self.refuse_when_full()?;
        if put.lease != 0 && !self.leases.contains_key(&put.lease) {
            return Err(ApplyError::LeaseNotFound);
        }
        let (response, events) = self.keyspace.put(put)?;
        Ok((Reply::Put(response), events))
    }

    fn txn(&mut self, txn: &TxnRequest) -> Result<(Reply, Vec<Event>), ApplyError> {
        let mut leases = Vec::new();
        let writes = collect_puts(txn, &mut leases);
        if writes {
            self.refuse_when_full()?;
        }
        if leases
            .iter()
            .any(|l| *l != 0 && !self.leases.contains_key(l))
        {
            return Err(ApplyError::LeaseNotFound);
        }
        let (response, events) = self.keyspace.txn_with_events(txn)?;
        Ok((Reply::Txn(response), events))
    }

    fn compact(&mut self, revision: i64) -> Result<(Reply, Vec<Event>), ApplyError> {
        if revision <= self.keyspace.compacted_revision() {
            return Err(MvccError::Compacted.into());
        }
        let dropped = self.keyspace.compact(revision)?;
        self.compacted_away.extend(dropped);
        self.size = self.keyspace.retained_bytes();
        Ok((Reply::Compact, Vec::new()))
    }

    fn grant(&mut self, index: u64, id: i64, ttl: i64) -> Result<(Reply, Vec<Event>), ApplyError> {
        if ttl > MAX_LEASE_TTL {
            return Err(ApplyError::LeaseTtlTooLarge);
        }
        self.refuse_when_full()?;
        let id = if id == 0 {
            self.pick_lease_id(index)
        } else {
            id
        };
        if self.leases.contains_key(&id) {
            return Err(ApplyError::LeaseExists);
        }
        self.leases.insert(
            id,
            Lease {
                id,
                ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok((Reply::LeaseGrant { id, ttl }, Vec::new()))
    }

    /// Deterministic and unlikely to collide with ids clients choose.
    fn pick_lease_id(&self, index: u64) -> i64 {
        let mut seed = index;
        loop {
            // splitmix64
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let id = (z >> 1) as i64;
            if id != 0 && !self.leases.contains_key(&id) {
                return id;
            }
        }
    }

    fn revoke(&mut self, id: i64) -> Result<(Reply, Vec<Event>), ApplyError> {
        let lease = self.leases.remove(&id).ok_or(ApplyError::LeaseNotFound)?;
        let writes: Vec<Write> = lease
            .keys
            .into_iter()
            .map(|key| Write::Delete {
                key,
                range_end: Vec::new(),
            })
            .collect();
        let (_, events) = self.keyspace.apply(&writes);
        Ok((Reply::LeaseRevoke, events))
    }

    fn refuse_when_full(&self) -> Result<(), ApplyError> {
        if self.nospace.is_empty() {
            Ok(())
        } else {
            Err(ApplyError::NoSpace)
        }
    }

    /// Keeps lease attachments and the size in step with what changed.
    fn account(&mut self, events: &[Event]) {
        for event in events {
            let key = &event.kv.key;
            if let Some(prev) = &event.prev_kv {
                if prev.lease != 0 {
                    if let Some(lease) = self.leases.get_mut(&prev.lease) {
                        lease.keys.remove(key);
                    }
                }
            }
            self.size += (key.len() + event.kv.value.len() + VERSION_OVERHEAD) as u64;
            if event.kind == EventKind::Put && event.kv.lease != 0 {
                if let Some(lease) = self.leases.get_mut(&event.kv.lease) {
                    lease.keys.insert(key.clone());
                }
            }
        }
    }
}

/// Whether a txn may write anything; collects the leases its puts name.
fn collect_puts(txn: &TxnRequest, leases: &mut Vec<i64>) -> bool {
    let mut writes = false;
    for op in txn.success.iter().chain(&txn.failure) {
        match op {
            RequestOp::Put(put) => {
                writes = true;
                leases.push(put.lease);
            }
            RequestOp::DeleteRange(_) => {}
            RequestOp::Range(_) => {}
            RequestOp::Txn(nested) => writes |= collect_puts(nested, leases),
        }
    }
    writes
}
