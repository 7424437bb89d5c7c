//! The state database's tables, and each way of writing and reading them:
//! applied batches, a whole state (an installed snapshot, a restore), the
//! state at start, and a snapshot file encoded straight from the records.

use std::collections::BTreeMap;

use openraft::SnapshotMeta;
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use serde::Serialize;

use super::applied::{Batch, Position, Step};
use super::error::StateDbError;
use crate::lease::Lease;
use crate::mvcc::{EventKind, KeyValue, Record};
use crate::raft::snapshot::SNAPSHOT_MAGIC;
use crate::raft::{Member, NodeId};
use crate::state::{State, StateSnapshot};

/// (main, sub) → postcard of the `Record`, exactly as snapshots carry it.
const RECORDS: TableDefinition<(i64, i64), &[u8]> = TableDefinition::new("records");

/// Lease id → granted TTL.
const LEASES: TableDefinition<i64, i64> = TableDefinition::new("leases");

/// (lease id, key) for every key attached to a lease.
const LEASE_KEYS: TableDefinition<(i64, &[u8]), ()> = TableDefinition::new("lease_keys");

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const POSITION: &str = "position";

#[derive(Serialize)]
struct RecordRef<'a> {
    main: i64,
    sub: i64,
    kind: EventKind,
    kv: &'a KeyValue,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StateDbError> {
    crate::raft::encode(value).map_err(StateDbError::Encode)
}

fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StateDbError> {
    crate::raft::decode(bytes).map_err(|source| StateDbError::Decode { what, source })
}

/// Writes applied batches in one transaction.
pub(super) fn commit(
    db: &Database,
    batches: &[Batch],
    durability: Durability,
) -> Result<(), StateDbError> {
    let Some(last) = batches.last() else {
        if matches!(durability, Durability::Immediate) {
            // Makes earlier commits without fsync durable.
            let txn = db.begin_write()?;
            txn.commit()?;
        }
        return Ok(());
    };
    let mut txn = db.begin_write()?;
    txn.set_durability(durability)?;
    {
        let mut records = txn.open_table(RECORDS)?;
        let mut leases = txn.open_table(LEASES)?;
        let mut lease_keys = txn.open_table(LEASE_KEYS)?;
        let mut meta = txn.open_table(META)?;
        for step in batches.iter().flat_map(|batch| &batch.steps) {
            match step {
                Step::Changes(change) => {
                    for (sub, event) in change.events.iter().enumerate() {
                        let (main, sub) = (change.revision, sub as i64);
                        let bytes = encode(&RecordRef {
                            main,
                            sub,
                            kind: event.kind,
                            kv: &event.kv,
                        })?;
                        records.insert((main, sub), bytes.as_slice())?;
                        // Lease attachments as State::account keeps them.
                        let key = event.kv.key.as_slice();
                        if let Some(prev) = event.prev_kv.as_ref().filter(|p| p.lease != 0) {
                            lease_keys.remove((prev.lease, key))?;
                        }
                        if event.kind == EventKind::Put && event.kv.lease != 0 {
                            lease_keys.insert((event.kv.lease, key), ())?;
                        }
                    }
                }
                Step::Grant { id, ttl } => {
                    leases.insert(id, ttl)?;
                }
                // Its keys went with the deletes the revoke made.
                Step::Revoke(id) => {
                    leases.remove(id)?;
                }
                Step::Compacted(dropped) => {
                    for at in dropped {
                        records.remove(at)?;
                    }
                }
            }
        }
        meta.insert(POSITION, encode(&last.position)?.as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

pub(super) fn replace(
    db: &Database,
    snapshot: &StateSnapshot,
    position: &Position,
    durability: Durability,
) -> Result<(), StateDbError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(durability)?;
    txn.delete_table(RECORDS)?;
    txn.delete_table(LEASES)?;
    txn.delete_table(LEASE_KEYS)?;
    {
        let mut records = txn.open_table(RECORDS)?;
        for record in &snapshot.keyspace.records {
            records.insert((record.main, record.sub), encode(record)?.as_slice())?;
        }
        let mut leases = txn.open_table(LEASES)?;
        let mut lease_keys = txn.open_table(LEASE_KEYS)?;
        for lease in &snapshot.leases {
            leases.insert(lease.id, lease.ttl)?;
            for key in &lease.keys {
                lease_keys.insert((lease.id, key.as_slice()), ())?;
            }
        }
        let mut meta = txn.open_table(META)?;
        meta.insert(POSITION, encode(position)?.as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

/// Readers can then count on every table being there.
pub(super) fn create_tables(db: &Database) -> Result<(), StateDbError> {
    let txn = db.begin_write()?;
    txn.open_table(RECORDS)?;
    txn.open_table(LEASES)?;
    txn.open_table(LEASE_KEYS)?;
    txn.open_table(META)?;
    txn.commit()?;
    Ok(())
}

/// The state as of `txn`, or None when nothing was ever written.
fn read_position(txn: &ReadTransaction) -> Result<Option<Position>, StateDbError> {
    let Some(bytes) = txn.open_table(META)?.get(POSITION)? else {
        return Ok(None);
    };
    decode(bytes.value(), "applied position").map(Some)
}

fn read_leases(txn: &ReadTransaction) -> Result<Vec<Lease>, StateDbError> {
    let mut leases: BTreeMap<i64, Lease> = BTreeMap::new();
    for row in txn.open_table(LEASES)?.iter()? {
        let (id, ttl) = row?;
        let id = id.value();
        leases.insert(
            id,
            Lease {
                id,
                ttl: ttl.value(),
                keys: Default::default(),
            },
        );
    }
    for row in txn.open_table(LEASE_KEYS)?.iter()? {
        let (at, _) = row?;
        let (id, key) = at.value();
        let lease = leases
            .get_mut(&id)
            .ok_or_else(|| StateDbError::KeyOfMissingLease { lease: id })?;
        lease.keys.insert(key.to_vec());
    }
    Ok(leases.into_values().collect())
}

pub(super) fn load(db: &Database) -> Result<Option<(State, Position)>, StateDbError> {
    let txn = db.begin_read()?;
    let Some(position) = read_position(&txn)? else {
        return Ok(None);
    };
    let mut records = Vec::new();
    for row in txn.open_table(RECORDS)?.iter()? {
        let (_, bytes) = row?;
        records.push(decode::<Record>(bytes.value(), "record")?);
    }
    let snapshot = StateSnapshot {
        keyspace: crate::mvcc::Snapshot {
            revision: position.revision,
            compacted_revision: position.compacted,
            records,
        },
        leases: read_leases(&txn)?,
        nospace: position.nospace.clone(),
    };
    let state = State::restore(&snapshot).map_err(StateDbError::State)?;
    Ok(Some((state, position)))
}

/// Encodes the state `txn` sees as a snapshot file (see `SnapshotFile`),
/// byte for byte what `SnapshotFile::encode` gives, without decoding the
/// records or holding them all twice. `snapshot_id` names it from its
/// position.
pub fn encode_snapshot(
    txn: &ReadTransaction,
    snapshot_id: impl FnOnce(&Position) -> String,
) -> Result<EncodedSnapshot, StateDbError> {
    let position = read_position(txn)?.unwrap_or_default();
    let meta = SnapshotMeta {
        last_log_id: position.last_applied,
        last_membership: position.last_membership.clone(),
        snapshot_id: snapshot_id(&position),
    };
    let records = txn.open_table(RECORDS)?;
    let count = records.len()? as usize;
    let ser = StateDbError::Encode;
    let mut bytes = postcard::to_extend(
        &(&meta, position.revision, position.compacted, count),
        SNAPSHOT_MAGIC.to_vec(),
    )
    .map_err(ser)?;
    for row in records.iter()? {
        let (_, record) = row?;
        bytes.extend_from_slice(record.value());
    }
    let bytes = postcard::to_extend(&(read_leases(txn)?, &position.nospace), bytes).map_err(ser)?;
    Ok(EncodedSnapshot {
        meta,
        revision: position.revision,
        bytes,
    })
}

pub struct EncodedSnapshot {
    pub meta: SnapshotMeta<NodeId, Member>,
    /// The store revision it holds.
    pub revision: i64,
    pub bytes: Vec<u8>,
}
