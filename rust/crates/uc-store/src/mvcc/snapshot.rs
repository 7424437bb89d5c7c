//! The keyspace as plain data, for Raft snapshots: every retained change in
//! revision order, like etcd's backend `key` bucket (revision → KeyValue,
//! with a tombstone mark for deletes), plus the revision and the compacted
//! revision. The key index is rebuilt from it on restore.

use super::keyspace::{Change, EventKind, KeyValue, Keyspace};

/// One change of one key at revision `main`/`sub`. A delete's `kv` is the
/// tombstone: the key and the deleting revision, everything else zero.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub main: i64,
    pub sub: i64,
    pub kind: EventKind,
    pub kv: KeyValue,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub revision: i64,
    pub compacted_revision: i64,
    /// In (main, sub) order.
    pub records: Vec<Record>,
}

/// A snapshot that no keyspace could have produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "snapshot: revision {revision} is below 1 or below the compacted revision {compacted}"
    )]
    Revisions { revision: i64, compacted: i64 },
    #[error("snapshot: record {main}/{sub} is out of order or beyond revision {revision}")]
    Record { main: i64, sub: i64, revision: i64 },
    #[error("snapshot: record {main}/{sub} carries mod revision {mod_revision}")]
    ModRevision {
        main: i64,
        sub: i64,
        mod_revision: i64,
    },
}

impl Keyspace {
    /// The whole state, history included, as plain data.
    pub fn snapshot(&self) -> Snapshot {
        let mut records: Vec<Record> = self
            .keys
            .iter()
            .flat_map(|(key, changes)| {
                changes.iter().map(|change| Record {
                    main: change.main,
                    sub: change.sub,
                    kind: if change.kv.is_some() {
                        EventKind::Put
                    } else {
                        EventKind::Delete
                    },
                    kv: change
                        .kv
                        .clone()
                        .unwrap_or_else(|| KeyValue::tombstone(key.clone(), change.main)),
                })
            })
            .collect();
        records.sort_by_key(|r| (r.main, r.sub));
        Snapshot {
            revision: self.revision,
            compacted_revision: self.compacted,
            records,
        }
    }

    /// Rebuilds a keyspace equal to the one `snapshot` was taken from.
    pub fn restore(snapshot: &Snapshot) -> Result<Keyspace, SnapshotError> {
        let (revision, compacted) = (snapshot.revision, snapshot.compacted_revision);
        if revision < 1 || compacted < 0 || compacted > revision {
            return Err(SnapshotError::Revisions {
                revision,
                compacted,
            });
        }
        let mut ks = Keyspace::new();
        ks.revision = revision;
        ks.compacted = compacted;
        let mut last = (0, -1);
        for record in &snapshot.records {
            let at = (record.main, record.sub);
            if at <= last || record.main > revision || record.sub < 0 {
                return Err(SnapshotError::Record {
                    main: record.main,
                    sub: record.sub,
                    revision,
                });
            }
            if record.kv.mod_revision != record.main {
                return Err(SnapshotError::ModRevision {
                    main: record.main,
                    sub: record.sub,
                    mod_revision: record.kv.mod_revision,
                });
            }
            last = at;
            ks.keys
                .entry(record.kv.key.clone())
                .or_default()
                .push(Change {
                    main: record.main,
                    sub: record.sub,
                    kv: (record.kind == EventKind::Put).then(|| record.kv.clone()),
                });
        }
        Ok(ks)
    }
}
