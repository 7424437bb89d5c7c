//! `uc-store snapshot restore`: a snapshot saved with `etcdctl snapshot save`
//! (from uc-store, or from etcd 3.x, whose snapshot is its bbolt backend)
//! becomes the data dir of one member of a new cluster, as
//! `etcdctl snapshot restore` does for etcd. Every member of the new cluster
//! is restored from the same file with the same --initial-cluster and
//! --initial-cluster-token, then started with `--initial-cluster-state new`.
//! Keys keep their revisions, history back to the compacted revision, and
//! leases (with a fresh TTL from the first leader, as etcd); the old
//! membership and alarms are dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use sha2::Digest;
use uc_types::InitialMember;

use crate::lease::Lease;
use crate::mvcc::{EventKind, KeyValue, Keyspace, MvccError, Record, Snapshot};
use crate::raft::snapshot::{SnapshotFile, SnapshotFileError, SNAPSHOT_MAGIC};
use crate::raft::state_db::{self, Position, StateDbError, STATE_FILE};
use crate::server::{bootstrap, check_identity, StartError};
use crate::state::StateSnapshot;
use bbolt::BoltError;

mod bbolt;

/// Why a restore wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The flags do not describe this member of a cluster, or the data
    /// dir's identity could not be written.
    #[error(transparent)]
    Member(#[from] StartError),
    #[error("data dir {} exists and is not empty; a restore makes a new member: choose another --data-dir or move that one away", .0.display())]
    DataDirNotEmpty(PathBuf),
    /// The snapshot file at `file` cannot be restored.
    #[error("{}: {source}", file.display())]
    Snapshot { file: PathBuf, source: FileError },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    StateDb(#[from] StateDbError),
}

/// What is wrong with a snapshot file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Read(std::io::Error),
    #[error("snapshot file integrity check failed: its SHA-256 does not match its contents (damaged or cut short)")]
    HashMismatch,
    #[error("snapshot file integrity check failed: no SHA-256 trailer (not written by `etcdctl snapshot save`?); pass --skip-hash-check to restore it anyway, e.g. a member's member/snap/db")]
    NoHash,
    #[error("not a snapshot of uc-store or of etcd 3.x (neither format's header found)")]
    UnknownFormat,
    #[error(transparent)]
    UcStore(#[from] SnapshotFileError),
    #[error(transparent)]
    Bolt(#[from] BoltError),
    #[error("a bbolt file without etcd's \"key\" bucket: not an etcd snapshot")]
    NoKeyBucket,
    #[error("key bucket: {at:x?} is not an etcd revision")]
    KeyRevision { at: Vec<u8> },
    #[error("key bucket: the value at revision {main}/{sub}: {source}")]
    KeyValue {
        main: i64,
        sub: i64,
        source: prost::DecodeError,
    },
    #[error("meta bucket: {name:?} is not a revision")]
    MetaRevision { name: Vec<u8> },
    #[error("lease bucket: {0}")]
    Lease(prost::DecodeError),
    /// What no store could have written.
    #[error(transparent)]
    State(#[from] crate::mvcc::SnapshotError),
    #[error("finishing etcd's compaction to {revision}: {source}")]
    Compaction { revision: i64, source: MvccError },
}

/// What to restore where; the flags of `etcdctl snapshot restore`.
#[derive(Debug, Clone)]
pub struct Restore {
    pub snapshot: PathBuf,
    pub name: String,
    pub data_dir: PathBuf,
    pub initial_cluster: Vec<InitialMember>,
    pub initial_advertise_peer_urls: Vec<String>,
    pub initial_cluster_token: String,
    /// Restore a file without etcdctl's SHA-256 trailer (a member's
    /// `member/snap/db`, or a copy of `snapshot.bin`).
    pub skip_hash_check: bool,
}

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// "uc-store" or "etcd".
    pub format: &'static str,
    pub revision: i64,
    pub compacted_revision: i64,
    /// Keys that exist at the revision.
    pub keys: usize,
    /// Retained changes (history included).
    pub records: usize,
    pub leases: usize,
    /// Keys attached to a lease the snapshot does not hold (etcd keeps
    /// them attached to nothing; so does uc-store).
    pub orphaned_lease_keys: usize,
}

pub fn restore(request: &Restore) -> Result<Restored, RestoreError> {
    let dir = &request.data_dir;
    let plan = bootstrap(
        &request.name,
        &request.initial_advertise_peer_urls,
        &request.initial_cluster,
        &request.initial_cluster_token,
    )?;
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(RestoreError::DataDirNotEmpty(dir.clone()));
    }
    let in_file = |source: FileError| RestoreError::Snapshot {
        file: request.snapshot.clone(),
        source,
    };
    let bytes = std::fs::read(&request.snapshot).map_err(|e| in_file(FileError::Read(e)))?;
    let data = verify(&bytes, request.skip_hash_check).map_err(in_file)?;
    let (
        format,
        Prepared {
            snapshot,
            orphaned_lease_keys,
            keys,
        },
    ) = decode(data).map_err(in_file)?;
    // Refuses what no store could have written before anything is written.
    crate::state::State::restore(&snapshot).map_err(|e| in_file(FileError::State(e)))?;
    let restored = Restored {
        format,
        revision: snapshot.keyspace.revision,
        compacted_revision: snapshot.keyspace.compacted_revision,
        keys,
        records: snapshot.keyspace.records.len(),
        leases: snapshot.leases.len(),
        orphaned_lease_keys,
    };
    let position = Position {
        revision: snapshot.keyspace.revision,
        compacted: snapshot.keyspace.compacted_revision,
        ..Position::default()
    };

    // Written next to the data dir and renamed into place: a restore that
    // fails halfway leaves no data dir a member could start from.
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RestoreError::Io { path, source }
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let staging = staging_dir(dir);
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(io(&staging))?;
    let written = check_identity(&staging, &plan.identity)
        .map_err(RestoreError::from)
        .and_then(|()| {
            Ok(state_db::create(
                &staging.join(STATE_FILE),
                &snapshot,
                &position,
            )?)
        })
        .and_then(|()| {
            // An empty data dir that exists (made by a unit's StateDirectory).
            if dir.exists() {
                std::fs::remove_dir(dir).map_err(io(dir))?;
            }
            std::fs::rename(&staging, dir).map_err(io(dir))?;
            std::fs::File::open(&parent)
                .and_then(|p| p.sync_all())
                .map_err(io(&parent))
        });
    if let Err(err) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(err);
    }
    Ok(restored)
}

fn staging_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".restoring");
    dir.with_file_name(name)
}

/// The snapshot without etcdctl's trailer: `etcdctl snapshot save` writes
/// the member's bytes (a multiple of 512) and their SHA-256.
fn verify(bytes: &[u8], skip_hash_check: bool) -> Result<&[u8], FileError> {
    let digest = sha2::Sha256::output_size();
    if bytes.len() % 512 == digest {
        let (data, trailer) = bytes.split_at(bytes.len() - digest);
        if !skip_hash_check && sha2::Sha256::digest(data).as_slice() != trailer {
            return Err(FileError::HashMismatch);
        }
        return Ok(data);
    }
    if skip_hash_check {
        return Ok(bytes);
    }
    Err(FileError::NoHash)
}

/// The state to restore, and what to report about it.
struct Prepared {
    snapshot: StateSnapshot,
    orphaned_lease_keys: usize,
    /// Keys that exist at the snapshot's revision.
    keys: usize,
}

/// The state a snapshot holds, in either format, and its format's name.
fn decode(data: &[u8]) -> Result<(&'static str, Prepared), FileError> {
    if data.starts_with(SNAPSHOT_MAGIC) || data.first() == Some(&b'{') {
        let file = SnapshotFile::decode(data)?;
        return Ok(("uc-store", prepare(file.state.keyspace, file.state.leases)));
    }
    if bbolt::looks_like_bbolt(data) {
        let (keyspace, leases) = from_etcd(data)?;
        return Ok(("etcd", prepare(keyspace, leases)));
    }
    Err(FileError::UnknownFormat)
}

/// Leases as the snapshot has them, their keys from the keyspace: the keys
/// whose newest change is a put with that lease. No alarms: they named
/// the old cluster's members.
fn prepare(keyspace: Snapshot, leases: Vec<Lease>) -> Prepared {
    let mut leases: BTreeMap<i64, Lease> = leases
        .into_iter()
        .map(|lease| {
            let id = lease.id;
            (
                id,
                Lease {
                    keys: Default::default(),
                    ..lease
                },
            )
        })
        .collect();
    let mut newest: BTreeMap<&[u8], &Record> = BTreeMap::new();
    for record in &keyspace.records {
        newest.insert(&record.kv.key, record);
    }
    let mut orphaned = 0;
    let keys = newest.values().filter(|r| r.kind == EventKind::Put).count();
    for record in newest.values() {
        if record.kind != EventKind::Put || record.kv.lease == 0 {
            continue;
        }
        match leases.get_mut(&record.kv.lease) {
            Some(lease) => {
                lease.keys.insert(record.kv.key.clone());
            }
            None => orphaned += 1,
        }
    }
    Prepared {
        snapshot: StateSnapshot {
            keyspace,
            leases: leases.into_values().collect(),
            nospace: Vec::new(),
        },
        orphaned_lease_keys: orphaned,
        keys,
    }
}

/// etcd 3.x's `lease` bucket value (leasepb.Lease).
#[derive(Clone, PartialEq, prost::Message)]
struct EtcdLease {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
}

/// etcd's backend as uc-store's keyspace: the `key` bucket holds every
/// retained change under its revision (8-byte main, `_`, 8-byte sub, all
/// big-endian, and a `t` for a delete) as an mvccpb.KeyValue; `meta` the
/// compacted revisions; `lease` the leases.
fn from_etcd(data: &[u8]) -> Result<(Snapshot, Vec<Lease>), FileError> {
    let bolt = bbolt::Bolt::open(data)?;
    let keys = bolt.bucket(b"key")?.ok_or(FileError::NoKeyBucket)?;
    let mut records = Vec::new();
    bolt.for_each(keys, |at, value| {
        let (main, sub, tombstone) =
            etcd_revision(at).ok_or_else(|| FileError::KeyRevision { at: at.to_vec() })?;
        let kv = uc_proto::mvccpb::KeyValue::decode(value)
            .map_err(|source| FileError::KeyValue { main, sub, source })?;
        let (kind, kv) = if tombstone {
            (EventKind::Delete, KeyValue::tombstone(kv.key, main))
        } else {
            let kv = KeyValue {
                key: kv.key,
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
                value: kv.value,
                lease: kv.lease,
            };
            (EventKind::Put, kv)
        };
        records.push(Record {
            main,
            sub,
            kind,
            kv,
        });
        Ok::<(), FileError>(())
    })?;

    let (mut finished, mut scheduled) = (0, 0);
    if let Some(meta) = bolt.bucket(b"meta")? {
        bolt.for_each(meta, |name, value| {
            let main = || {
                etcd_revision(value)
                    .map(|(main, _, _)| main)
                    .ok_or_else(|| FileError::MetaRevision {
                        name: name.to_vec(),
                    })
            };
            match name {
                b"finishedCompactRev" => finished = main()?,
                b"scheduledCompactRev" => scheduled = main()?,
                _ => {}
            }
            Ok::<(), FileError>(())
        })?;
    }
    let mut leases = Vec::new();
    if let Some(bucket) = bolt.bucket(b"lease")? {
        bolt.for_each(bucket, |_, value| {
            let lease = EtcdLease::decode(value).map_err(FileError::Lease)?;
            leases.push(Lease {
                id: lease.id,
                ttl: lease.ttl,
                keys: Default::default(),
            });
            Ok::<(), FileError>(())
        })?;
    }

    // As etcd's restore: the revision is the newest change's, or the
    // compacted one if that is newer (a compaction may have removed the
    // newest tombstones), and never below 1.
    let newest = records.last().map_or(0, |r| r.main);
    let revision = newest.max(finished).max(1);
    let snapshot = Snapshot {
        revision,
        compacted_revision: finished,
        records,
    };
    if scheduled <= finished || scheduled > revision {
        return Ok((snapshot, leases));
    }
    // A compaction etcd had scheduled but not finished: etcd finishes it
    // when it starts; so does the restore.
    let mut keyspace = Keyspace::restore(&snapshot)?;
    keyspace
        .compact(scheduled)
        .map_err(|source| FileError::Compaction {
            revision: scheduled,
            source,
        })?;
    Ok((keyspace.snapshot(), leases))
}

/// (main, sub, tombstone) from etcd's revision bytes.
fn etcd_revision(bytes: &[u8]) -> Option<(i64, i64, bool)> {
    let tombstone = match bytes.len() {
        17 => false,
        18 if bytes[17] == b't' => true,
        _ => return None,
    };
    if bytes[8] != b'_' {
        return None;
    }
    let main = i64::from_be_bytes(bytes[..8].try_into().ok()?);
    let sub = i64::from_be_bytes(bytes[9..17].try_into().ok()?);
    Some((main, sub, tombstone))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_trailer_is_checked_and_stripped() {
        let mut data = b"ucsnap".to_vec();
        data.resize(1024, 0);
        let mut saved = data.clone();
        saved.extend_from_slice(&sha2::Sha256::digest(&data));
        assert_eq!(verify(&saved, false).unwrap(), data.as_slice());
        assert_eq!(verify(&saved, true).unwrap(), data.as_slice());

        let mut damaged = saved.clone();
        damaged[100] ^= 1;
        let err = verify(&damaged, false).err().unwrap().to_string();
        assert!(err.contains("does not match"), "{err}");
        assert!(verify(&damaged, true).is_ok());

        let err = verify(&data, false).err().unwrap().to_string();
        assert!(err.contains("--skip-hash-check"), "{err}");
        assert_eq!(verify(&data, true).unwrap(), data.as_slice());
    }

    #[test]
    fn etcd_revisions_are_read_as_etcd_writes_them() {
        let mut at = 5i64.to_be_bytes().to_vec();
        at.push(b'_');
        at.extend_from_slice(&2i64.to_be_bytes());
        assert_eq!(etcd_revision(&at), Some((5, 2, false)));
        at.push(b't');
        assert_eq!(etcd_revision(&at), Some((5, 2, true)));
        at[8] = b'-';
        assert_eq!(etcd_revision(&at), None);
        assert_eq!(etcd_revision(b"short"), None);
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        let err = decode(b"PK\x03\x04 a zip file").err().unwrap().to_string();
        assert!(err.contains("neither format"), "{err}");
    }
}
