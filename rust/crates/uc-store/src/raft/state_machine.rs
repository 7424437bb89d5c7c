//! openraft's state machine over `State`. The state lives in memory; a
//! snapshot of it is written to `<data-dir>/snapshot.bin` (atomically, with
//! fsync) whenever openraft builds or installs one, and on start the member
//! loads it and openraft re-applies the committed log after it. Watchers
//! hear every applied change through `Shared::events`.

// openraft's traits return its (large) StorageError; helpers return it too.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::io::{Cursor, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{read_error, write_error, Member, NodeId, StorageError, TypeConfig};
use crate::mvcc::Event;
use crate::state::{Applied, Command, Reply, State, StateSnapshot};

/// Changes applied at one revision, in order; `reset` when the state was
/// replaced by a snapshot (watchers re-read from the keyspace).
#[derive(Debug, Clone)]
pub struct Changes {
    pub revision: i64,
    pub events: Vec<Event>,
    pub reset: bool,
}

/// The applied state and what has to be shared with the API.
pub struct Machine {
    pub state: State,
    pub last_applied: Option<LogId<NodeId>>,
    pub last_membership: StoredMembership<NodeId, Member>,
}

/// Shared between the state machine (writer) and the gRPC services.
pub struct Shared {
    machine: RwLock<Machine>,
    pub events: broadcast::Sender<Arc<Changes>>,
    /// Leader-side lease deadlines (not replicated: see `lease_clock`).
    pub lease_deadlines: Mutex<HashMap<i64, Instant>>,
    snapshot_path: PathBuf,
    snapshot_counter: AtomicU64,
}

impl Shared {
    pub fn read(&self) -> RwLockReadGuard<'_, Machine> {
        // A panic while holding the lock leaves consistent data behind: apply
        // changes it only through `State::apply`, which does not panic.
        self.machine.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Machine> {
        self.machine.write().unwrap_or_else(|p| p.into_inner())
    }

    fn deadlines(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Instant>> {
        self.lease_deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Gives every lease a fresh TTL from now (a new leader does this, as etcd).
    pub fn refresh_leases(&self) {
        let machine = self.read();
        let now = Instant::now();
        let mut deadlines = self.deadlines();
        deadlines.clear();
        for lease in machine.state.leases.values() {
            deadlines.insert(lease.id, now + ttl_duration(lease.ttl));
        }
    }

    /// A copy of the applied state as a snapshot. Only the copy is made
    /// under the lock; encoding it, which takes longer, is the caller's.
    pub fn snapshot_file(&self) -> SnapshotFile {
        let machine = self.read();
        let counter = self.snapshot_counter.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match machine.last_applied {
            Some(id) => format!("{}-{}-{counter}", id.leader_id, id.index),
            None => format!("none-{counter}"),
        };
        SnapshotFile {
            meta: SnapshotMeta {
                last_log_id: machine.last_applied,
                last_membership: machine.last_membership.clone(),
                snapshot_id,
            },
            state: machine.state.snapshot(),
        }
    }

    /// Extends a lease; returns its TTL, or None if it does not exist.
    pub fn keep_alive(&self, id: i64) -> Option<i64> {
        let ttl = self.read().state.leases.get(&id)?.ttl;
        self.deadlines()
            .insert(id, Instant::now() + ttl_duration(ttl));
        Some(ttl)
    }

    /// Seconds left on a lease (by this member's clock), if it exists.
    pub fn remaining(&self, id: i64) -> Option<i64> {
        let machine = self.read();
        let lease = machine.state.leases.get(&id)?;
        let left = self
            .deadlines()
            .get(&id)
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(ttl_duration(lease.ttl));
        Some(left.as_secs_f64().ceil() as i64)
    }

    /// Leases whose deadline passed.
    pub fn expired(&self) -> Vec<i64> {
        let now = Instant::now();
        let mut ids: Vec<i64> = self
            .deadlines()
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// Applies a command; batches (the leader's, nested when a follower's
/// forwarded batch was batched again) command by command, each at its own
/// revision with its own group of events for watchers.
fn apply_command(
    state: &mut State,
    index: u64,
    command: &Command,
    granted: &mut Vec<(i64, i64)>,
    revoked: &mut Vec<i64>,
    changes: &mut Vec<Changes>,
) -> Applied {
    if let Command::Batch(commands) = command {
        let items = commands
            .iter()
            .map(|c| apply_command(state, index, c, granted, revoked, changes))
            .collect();
        return Applied {
            revision: state.keyspace.revision(),
            reply: Reply::Batch(items),
        };
    }
    let (applied, events) = state.apply(index, command);
    note(command, &applied, events, granted, revoked, changes);
    applied
}

/// Records what an applied command means for lease clocks and watchers.
fn note(
    command: &Command,
    applied: &Applied,
    events: Vec<Event>,
    granted: &mut Vec<(i64, i64)>,
    revoked: &mut Vec<i64>,
    changes: &mut Vec<Changes>,
) {
    match (command, &applied.reply) {
        (Command::LeaseGrant { .. }, Reply::LeaseGrant { id, ttl }) => granted.push((*id, *ttl)),
        (Command::LeaseRevoke { id }, Reply::LeaseRevoke) => revoked.push(*id),
        _ => {}
    }
    if !events.is_empty() {
        changes.push(Changes {
            revision: applied.revision,
            events,
            reset: false,
        });
    }
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

/// What `snapshot.bin` holds, what is sent to a member that is behind, and
/// what Maintenance.Snapshot streams.
#[derive(Serialize, Deserialize)]
pub struct SnapshotFile {
    pub meta: SnapshotMeta<NodeId, Member>,
    pub state: StateSnapshot,
}

pub const SNAPSHOT_FILE: &str = "snapshot.bin";
/// Where versions before the binary format kept their snapshot (JSON).
const LEGACY_SNAPSHOT_FILE: &str = "snapshot.json";
/// Starts every snapshot; what follows is the postcard encoding of a
/// `SnapshotFile`, meta first so it can be read without decoding the state.
/// JSON took twice the space (keys and values as arrays of numbers) and
/// several times the time.
const SNAPSHOT_MAGIC: &[u8; 8] = b"ucsnap\x00\x01";

impl SnapshotFile {
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_extend(self, SNAPSHOT_MAGIC.to_vec())
    }

    /// Reads a snapshot in the binary format or in the JSON of older versions.
    pub fn decode(bytes: &[u8]) -> Result<SnapshotFile, String> {
        match bytes.strip_prefix(SNAPSHOT_MAGIC) {
            Some(rest) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
            None if bytes.first() == Some(&b'{') => {
                serde_json::from_slice(bytes).map_err(|e| e.to_string())
            }
            None => Err("not a uc-store snapshot (no known header)".to_string()),
        }
    }

    /// The meta alone: cheap for the binary format.
    fn decode_meta(bytes: &[u8]) -> Result<SnapshotMeta<NodeId, Member>, String> {
        match bytes.strip_prefix(SNAPSHOT_MAGIC) {
            Some(rest) => postcard::take_from_bytes(rest)
                .map(|(meta, _)| meta)
                .map_err(|e| e.to_string()),
            None => SnapshotFile::decode(bytes).map(|file| file.meta),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SnapshotDecodeError(String);

#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl StateMachine {
    /// Loads the last snapshot from `data_dir`, if any.
    pub fn open(data_dir: &Path) -> Result<StateMachine, String> {
        let snapshot_path = data_dir.join(SNAPSHOT_FILE);
        let mut machine = Machine {
            state: State::default(),
            last_applied: None,
            last_membership: StoredMembership::default(),
        };
        if let Some((path, bytes)) = read_snapshot(&snapshot_path)? {
            let file =
                SnapshotFile::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            machine.state =
                State::restore(&file.state).map_err(|e| format!("{}: {e}", path.display()))?;
            machine.last_applied = file.meta.last_log_id;
            machine.last_membership = file.meta.last_membership;
        }
        let (events, _) = broadcast::channel(4096);
        Ok(StateMachine {
            shared: Arc::new(Shared {
                machine: RwLock::new(machine),
                events,
                lease_deadlines: Mutex::new(HashMap::new()),
                snapshot_path,
                snapshot_counter: AtomicU64::new(0),
            }),
        })
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Encodes and writes a snapshot on a blocking thread: for a large
    /// keyspace that takes seconds, which the async workers must not lose.
    async fn save(&self, file: SnapshotFile) -> Result<(SnapshotFile, Vec<u8>), StorageError> {
        let path = self.shared.snapshot_path.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = file.encode().map_err(write_error)?;
            write_atomically(&path, &bytes).map_err(write_error)?;
            // The binary snapshot is durable: an older JSON one is stale.
            let legacy = path.with_file_name(LEGACY_SNAPSHOT_FILE);
            match std::fs::remove_file(&legacy) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(write_error(err))
                }
                _ => {}
            }
            Ok((file, bytes))
        })
        .await
        .map_err(write_error)?
    }
}

/// The snapshot file's path and bytes: the binary one, else the JSON one an
/// older version wrote, else none.
fn read_snapshot(path: &Path) -> Result<Option<(PathBuf, Vec<u8>)>, String> {
    for path in [
        path.to_path_buf(),
        path.with_file_name(LEGACY_SNAPSHOT_FILE),
    ] {
        match std::fs::read(&path) {
            Ok(bytes) => return Ok(Some((path, bytes))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(format!("{}: {err}", path.display())),
        }
    }
    Ok(None)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let started = Instant::now();
        // The copy too runs off the async workers: it takes as long as the
        // state is large (~0.3 s for 160 MB) and holds the state's lock,
        // and a worker blocked that long delays every task queued on it.
        let shared = self.shared.clone();
        let file = tokio::task::spawn_blocking(move || shared.snapshot_file())
            .await
            .map_err(write_error)?;
        let (file, bytes) = self.save(file).await?;
        tracing::info!(
            last_log_id = ?file.meta.last_log_id,
            bytes = bytes.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "snapshot built"
        );
        Ok(Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Member>), StorageError> {
        let machine = self.shared.read();
        Ok((machine.last_applied, machine.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        let mut changes = Vec::new();
        let mut granted = Vec::new();
        let mut revoked = Vec::new();
        {
            let mut machine = self.shared.write();
            for entry in entries {
                machine.last_applied = Some(entry.log_id);
                let applied = match entry.payload {
                    EntryPayload::Blank => Applied {
                        revision: machine.state.keyspace.revision(),
                        reply: Reply::None,
                    },
                    EntryPayload::Membership(membership) => {
                        machine.last_membership =
                            StoredMembership::new(Some(entry.log_id), membership);
                        Applied {
                            revision: machine.state.keyspace.revision(),
                            reply: Reply::None,
                        }
                    }
                    EntryPayload::Normal(command) => apply_command(
                        &mut machine.state,
                        entry.log_id.index,
                        &command,
                        &mut granted,
                        &mut revoked,
                        &mut changes,
                    ),
                };
                replies.push(applied);
            }
        }
        {
            let now = Instant::now();
            let mut deadlines = self.shared.deadlines();
            for (id, ttl) in granted {
                deadlines.insert(id, now + ttl_duration(ttl));
            }
            for id in revoked {
                deadlines.remove(&id);
            }
        }
        for change in changes {
            // No receivers is fine: nobody watches.
            let _ = self.shared.events.send(Arc::new(change));
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let (file, state) = tokio::task::spawn_blocking(move || {
            let file =
                SnapshotFile::decode(&bytes).map_err(|e| read_error(SnapshotDecodeError(e)))?;
            let state = State::restore(&file.state).map_err(read_error)?;
            Ok::<_, StorageError>((file, state))
        })
        .await
        .map_err(read_error)??;
        let file = SnapshotFile {
            meta: meta.clone(),
            state: file.state,
        };
        self.save(file).await?;
        let revision = state.keyspace.revision();
        {
            let mut machine = self.shared.write();
            machine.state = state;
            machine.last_applied = meta.last_log_id;
            machine.last_membership = meta.last_membership.clone();
        }
        self.shared.refresh_leases();
        tracing::info!(last_log_id = ?meta.last_log_id, revision, "snapshot installed");
        let _ = self.shared.events.send(Arc::new(Changes {
            revision,
            events: Vec::new(),
            reset: true,
        }));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some((_, bytes)) = read_snapshot(&self.shared.snapshot_path)
            .map_err(|e| read_error(SnapshotDecodeError(e)))?
        else {
            return Ok(None);
        };
        let meta =
            SnapshotFile::decode_meta(&bytes).map_err(|e| read_error(SnapshotDecodeError(e)))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mvcc::PutRequest;

    /// A state with a few keys and a lease, as a snapshot with its meta.
    fn sample() -> SnapshotFile {
        let mut state = State::default();
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            let put = Command::Put(PutRequest {
                key: key.as_bytes().to_vec(),
                value: vec![i as u8, 0, 255],
                ..Default::default()
            });
            state.apply(i as u64 + 1, &put);
        }
        SnapshotFile {
            meta: SnapshotMeta {
                last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(2, 7), 3)),
                last_membership: StoredMembership::default(),
                snapshot_id: "2-7-3-0".to_string(),
            },
            state: state.snapshot(),
        }
    }

    #[test]
    fn snapshots_round_trip_and_their_meta_reads_alone() {
        let file = sample();
        let bytes = file.encode().unwrap();
        assert!(bytes.starts_with(SNAPSHOT_MAGIC));
        let back = SnapshotFile::decode(&bytes).unwrap();
        assert_eq!(back.state, file.state);
        assert_eq!(back.meta, file.meta);
        assert_eq!(SnapshotFile::decode_meta(&bytes).unwrap(), file.meta);
        // Maintenance.Snapshot pads to 512 bytes: still the same snapshot.
        let mut padded = bytes.clone();
        padded.resize(bytes.len().div_ceil(512) * 512, 0);
        assert_eq!(SnapshotFile::decode(&padded).unwrap().state, file.state);
        // Half the size of the JSON that older versions wrote, or less.
        let json = serde_json::to_vec(&file).unwrap();
        assert!(
            bytes.len() * 2 <= json.len(),
            "{} vs {}",
            bytes.len(),
            json.len()
        );
    }

    #[test]
    fn a_snapshot_that_is_neither_format_is_refused_by_name() {
        let err = SnapshotFile::decode(b"PK\x03\x04 not ours").err().unwrap();
        assert!(err.contains("not a uc-store snapshot"), "{err}");
        let mut cut = sample().encode().unwrap();
        cut.truncate(cut.len() / 2);
        assert!(SnapshotFile::decode(&cut).is_err());
    }

    /// A data dir written by a version that kept `snapshot.json` opens with
    /// its state; the next snapshot replaces the JSON with `snapshot.bin`.
    #[tokio::test]
    async fn a_json_snapshot_of_an_older_version_is_read_then_replaced() {
        let dir = uc_testkit::TestDir::new("uc-store-legacy-snapshot");
        let file = sample();
        std::fs::write(
            dir.join(LEGACY_SNAPSHOT_FILE),
            serde_json::to_vec(&file).unwrap(),
        )
        .unwrap();
        let mut machine = StateMachine::open(&dir).unwrap();
        {
            let shared = machine.shared();
            let read = shared.read();
            assert_eq!(read.last_applied, file.meta.last_log_id);
            assert_eq!(read.state.snapshot(), file.state);
        }
        let current = machine.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, file.meta);

        machine.build_snapshot().await.unwrap();
        assert!(!dir.join(LEGACY_SNAPSHOT_FILE).exists());
        let bytes = std::fs::read(dir.join(SNAPSHOT_FILE)).unwrap();
        assert_eq!(SnapshotFile::decode(&bytes).unwrap().state, file.state);
        let reopened = StateMachine::open(&dir).unwrap();
        assert_eq!(reopened.shared().read().state.snapshot(), file.state);
    }
}
