//! openraft's state machine over `State`. Every applied batch goes to the
//! state database (`state_db`), which a restart loads; openraft re-applies
//! the committed log after what it holds. The state is in memory too, for
//! reads. A snapshot is encoded from the database and written to
//! `<data-dir>/snapshot.bin` (atomically, with fsync) for members that are
//! behind and for Maintenance.Snapshot. Watchers hear every applied change
//! through `Shared::events`.

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

use super::state_db::{self, Batch, Position, StateDb, Step};
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
    db: StateDb,
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

    /// The state as the database has it now, as a snapshot file (without
    /// fsync: for Maintenance.Snapshot). Holds no lock on the state.
    /// Returns the bytes and their revision.
    pub fn snapshot_bytes(&self) -> Result<(Vec<u8>, i64), String> {
        let txn = self.db.begin_read()?;
        let encoded =
            state_db::encode_snapshot(&txn, |p| self.snapshot_id(p)).map_err(|e| e.to_string())?;
        Ok((encoded.bytes, encoded.revision))
    }

    fn snapshot_id(&self, position: &Position) -> String {
        let counter = self.snapshot_counter.fetch_add(1, Ordering::Relaxed);
        match position.last_applied {
            Some(id) => format!("{}-{}-{counter}", id.leader_id, id.index),
            None => format!("none-{counter}"),
        }
    }

    /// How long commits to the state database take.
    pub fn state_commit_durations(&self) -> Arc<uc_daemon::metrics::Histogram> {
        self.db.commit_durations()
    }

    /// Rewrites the state database without its free pages (Maintenance.Defragment).
    pub async fn defragment(&self) -> Result<state_db::Defragmented, String> {
        self.db.defragment().await
    }

    /// Writes everything applied to the disk (on shutdown: a restart then
    /// re-applies nothing).
    pub async fn flush(&self) -> Result<(), String> {
        self.db.checkpoint().await.map(drop)
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
    steps: &mut Vec<Step>,
) -> Applied {
    if let Command::Batch(commands) = command {
        let items = commands
            .iter()
            .map(|c| apply_command(state, index, c, steps))
            .collect();
        return Applied {
            revision: state.keyspace.revision(),
            reply: Reply::Batch(items),
        };
    }
    let (applied, events) = state.apply(index, command);
    note(command, &applied, events, steps);
    if !state.compacted_away.is_empty() {
        steps.push(Step::Compacted(std::mem::take(&mut state.compacted_away)));
    }
    applied
}

/// Records what an applied command changed, in order: for the database,
/// lease clocks and watchers.
fn note(command: &Command, applied: &Applied, events: Vec<Event>, steps: &mut Vec<Step>) {
    if !events.is_empty() {
        steps.push(Step::Changes(Arc::new(Changes {
            revision: applied.revision,
            events,
            reset: false,
        })));
    }
    match (command, &applied.reply) {
        (Command::LeaseGrant { .. }, Reply::LeaseGrant { id, ttl }) => {
            steps.push(Step::Grant { id: *id, ttl: *ttl })
        }
        (Command::LeaseRevoke { id }, Reply::LeaseRevoke) => steps.push(Step::Revoke(*id)),
        _ => {}
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
/// The state database, in the data dir.
pub const STATE_FILE: &str = "state.redb";
/// Where versions before the binary format kept their snapshot (JSON).
const LEGACY_SNAPSHOT_FILE: &str = "snapshot.json";
/// Starts every snapshot; what follows is the postcard encoding of a
/// `SnapshotFile`, meta first so it can be read without decoding the state.
/// JSON took twice the space (keys and values as arrays of numbers) and
/// several times the time.
pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"ucsnap\x00\x01";

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
struct Failure(String);

#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl StateMachine {
    /// Opens the state database in `data_dir` and loads what it holds. A
    /// data dir of a version that kept the state only in its snapshot file
    /// is loaded from that file, which then seeds the database. `fsync`
    /// as for the log (false: `--unsafe-no-fsync`).
    pub fn open(data_dir: &Path, fsync: bool) -> Result<StateMachine, String> {
        let snapshot_path = data_dir.join(SNAPSHOT_FILE);
        let mut opened = StateDb::open(&data_dir.join(STATE_FILE))?;
        let machine = match opened.loaded.take() {
            Some((state, position)) => Machine {
                state,
                last_applied: position.last_applied,
                last_membership: position.last_membership,
            },
            None => match read_snapshot(&snapshot_path)? {
                Some((path, bytes)) => {
                    let failed = |e: String| format!("{}: {e}", path.display());
                    let file = SnapshotFile::decode(&bytes).map_err(failed)?;
                    let state = State::restore(&file.state).map_err(|e| failed(e.to_string()))?;
                    let machine = Machine {
                        state,
                        last_applied: file.meta.last_log_id,
                        last_membership: file.meta.last_membership,
                    };
                    opened.seed(&file.state, &machine.position())?;
                    tracing::info!(from = %path.display(), "state database created from the snapshot");
                    machine
                }
                None => Machine {
                    state: State::default(),
                    last_applied: None,
                    last_membership: StoredMembership::default(),
                },
            },
        };
        let db = opened.start(fsync)?;
        let (events, _) = broadcast::channel(4096);
        Ok(StateMachine {
            shared: Arc::new(Shared {
                machine: RwLock::new(machine),
                events,
                lease_deadlines: Mutex::new(HashMap::new()),
                db,
                snapshot_path,
                snapshot_counter: AtomicU64::new(0),
            }),
        })
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Writes a snapshot file on a blocking thread: for a large keyspace
    /// that takes seconds, which the async workers must not lose.
    async fn save(&self, bytes: Vec<u8>) -> Result<Vec<u8>, StorageError> {
        let path = self.shared.snapshot_path.clone();
        tokio::task::spawn_blocking(move || {
            save_blocking(&path, &bytes)?;
            Ok(bytes)
        })
        .await
        .map_err(write_error)?
    }
}

impl Machine {
    fn position(&self) -> Position {
        Position {
            revision: self.state.keyspace.revision(),
            compacted: self.state.keyspace.compacted_revision(),
            nospace: self.state.nospace.iter().copied().collect(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
        }
    }
}

/// Writes `snapshot.bin`; the JSON file of older versions is then stale.
fn save_blocking(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    write_atomically(path, bytes).map_err(write_error)?;
    let legacy = path.with_file_name(LEGACY_SNAPSHOT_FILE);
    match std::fs::remove_file(&legacy) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(write_error(err)),
        _ => Ok(()),
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
        // The snapshot is of what is durable: openraft purges the log
        // behind it, and a restart re-applies the log from what is on disk.
        let txn = self
            .shared
            .db
            .checkpoint()
            .await
            .map_err(|e| write_error(Failure(e)))?;
        // Encoding takes as long as the state is large (seconds for
        // hundreds of MB): off the async workers, and without the state's lock.
        let shared = self.shared.clone();
        let (meta, bytes) = tokio::task::spawn_blocking(move || {
            let encoded =
                state_db::encode_snapshot(&txn, |p| shared.snapshot_id(p)).map_err(read_error)?;
            save_blocking(&shared.snapshot_path, &encoded.bytes)?;
            Ok::<_, StorageError>((encoded.meta, encoded.bytes))
        })
        .await
        .map_err(write_error)??;
        tracing::info!(
            last_log_id = ?meta.last_log_id,
            bytes = bytes.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "snapshot built"
        );
        Ok(Snapshot {
            meta,
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
        let mut steps = Vec::new();
        let position = {
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
                    EntryPayload::Normal(command) => {
                        apply_command(&mut machine.state, entry.log_id.index, &command, &mut steps)
                    }
                };
                replies.push(applied);
            }
            machine.position()
        };
        {
            let now = Instant::now();
            let mut deadlines = self.shared.deadlines();
            for step in &steps {
                match step {
                    Step::Grant { id, ttl } => {
                        deadlines.insert(*id, now + ttl_duration(*ttl));
                    }
                    Step::Revoke(id) => {
                        deadlines.remove(id);
                    }
                    Step::Changes(change) => {
                        // No receivers is fine: nobody watches.
                        let _ = self.shared.events.send(change.clone());
                    }
                    Step::Compacted(_) => {}
                }
            }
        }
        self.shared
            .db
            .apply(Batch { steps, position })
            .map_err(|e| write_error(Failure(e)))?;
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
        let (file, bytes, state) = tokio::task::spawn_blocking(move || {
            let file = SnapshotFile::decode(&bytes).map_err(|e| read_error(Failure(e)))?;
            let state = State::restore(&file.state).map_err(read_error)?;
            Ok::<_, StorageError>((file, bytes, state))
        })
        .await
        .map_err(read_error)??;
        // The sender's file carries the same meta; if not, ours is written.
        let bytes = if file.meta == *meta {
            bytes
        } else {
            SnapshotFile {
                meta: meta.clone(),
                state: file.state.clone(),
            }
            .encode()
            .map_err(write_error)?
        };
        let machine = Machine {
            state,
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
        };
        // The database first: a crash before the file is written leaves an
        // older snapshot beside a newer state, which is consistent.
        self.shared
            .db
            .replace(file.state, machine.position())
            .await
            .map_err(|e| write_error(Failure(e)))?;
        self.save(bytes).await?;
        let revision = machine.state.keyspace.revision();
        *self.shared.write() = machine;
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
        let Some((_, bytes)) =
            read_snapshot(&self.shared.snapshot_path).map_err(|e| read_error(Failure(e)))?
        else {
            return Ok(None);
        };
        let meta = SnapshotFile::decode_meta(&bytes).map_err(|e| read_error(Failure(e)))?;
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
    /// its state, which seeds the state database; the next snapshot
    /// replaces the JSON with `snapshot.bin`.
    #[tokio::test]
    async fn a_json_snapshot_of_an_older_version_is_read_then_replaced() {
        let dir = uc_testkit::TestDir::new("uc-store-legacy-snapshot");
        let file = sample();
        std::fs::write(
            dir.join(LEGACY_SNAPSHOT_FILE),
            serde_json::to_vec(&file).unwrap(),
        )
        .unwrap();
        let mut machine = StateMachine::open(&dir, true).unwrap();
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
        drop(machine);
        // Loaded from the database now: the snapshot file is not needed.
        std::fs::remove_file(dir.join(SNAPSHOT_FILE)).unwrap();
        let reopened = reopen(&dir).await;
        assert_eq!(reopened.shared().read().state.snapshot(), file.state);
        assert_eq!(reopened.shared().read().last_applied, file.meta.last_log_id);
    }

    /// Opens the state machine again once the last one's writer let go.
    async fn reopen(dir: &Path) -> StateMachine {
        uc_testkit::wait_for(
            "the state database to reopen",
            Duration::from_secs(5),
            || StateMachine::open(dir, true).ok(),
        )
    }

    fn put(key: &str, lease: i64) -> Command {
        Command::Put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: key.repeat(3).into_bytes(),
            lease,
            ..Default::default()
        })
    }

    /// Every kind of change the state database records: puts, deletes and
    /// a txn, leases granted, attached, revoked and granted again under the
    /// same id, a compaction, an alarm, and batches.
    fn history() -> Vec<Command> {
        use crate::mvcc::{DeleteRangeRequest, RequestOp, TxnRequest};
        vec![
            put("a", 0),
            Command::LeaseGrant { id: 7, ttl: 60 },
            put("b", 7),
            put("c", 7),
            Command::Txn(TxnRequest {
                compare: vec![],
                success: vec![
                    RequestOp::Put(PutRequest {
                        key: b"d".to_vec(),
                        value: b"dd".to_vec(),
                        ..Default::default()
                    }),
                    RequestOp::DeleteRange(DeleteRangeRequest {
                        key: b"a".to_vec(),
                        range_end: vec![],
                        prev_kv: false,
                    }),
                ],
                failure: vec![],
            }),
            put("a", 0),
            put("b", 0),
            Command::DeleteRange(DeleteRangeRequest {
                key: b"c".to_vec(),
                range_end: vec![],
                prev_kv: false,
            }),
            Command::Compact { revision: 5 },
            Command::Alarm {
                action: crate::state::AlarmAction::Activate,
                member: 3,
            },
            Command::Alarm {
                action: crate::state::AlarmAction::Deactivate,
                member: 3,
            },
            Command::LeaseGrant { id: 8, ttl: 30 },
            put("e", 8),
            put("f", 7),
            Command::Batch(vec![
                Command::LeaseRevoke { id: 7 },
                Command::LeaseGrant { id: 7, ttl: 5 },
                put("g", 7),
                put("a", 8),
            ]),
            Command::LeaseGrant { id: 11, ttl: 30 },
            Command::LeaseRevoke { id: 11 },
            Command::Alarm {
                action: crate::state::AlarmAction::Activate,
                member: 9,
            },
        ]
    }

    fn entries(commands: Vec<Command>, from: u64) -> Vec<Entry<TypeConfig>> {
        commands
            .into_iter()
            .zip(from..)
            .map(|(command, index)| Entry {
                log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Normal(command),
            })
            .collect()
    }

    /// What the database holds after applying is what memory holds: after
    /// a flush and a reopen, and as the snapshot encoded from it, which is
    /// byte for byte the encoding of the state in memory.
    #[tokio::test]
    async fn the_state_database_holds_what_memory_holds() {
        let dir = uc_testkit::TestDir::new("uc-store-state-db");
        let mut machine = StateMachine::open(&dir, true).unwrap();
        let commands = history();
        let count = commands.len() as u64;
        machine.apply(entries(commands, 1)).await.unwrap();
        let (expected, last_applied) = {
            let shared = machine.shared();
            let read = shared.read();
            assert_eq!(read.state.nospace.len(), 1);
            assert_eq!(read.state.leases.len(), 2, "{:?}", read.state.leases);
            (read.state.snapshot(), read.last_applied)
        };
        assert_eq!(last_applied.unwrap().index, count);
        assert_eq!(expected.keyspace.compacted_revision, 5);

        let snapshot = machine.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id, last_applied);
        let bytes = snapshot.snapshot.into_inner();
        let file = SnapshotFile::decode(&bytes).unwrap();
        assert_eq!(file.state, expected);
        assert_eq!(file.encode().unwrap(), bytes);

        machine.shared().flush().await.unwrap();
        drop(machine);
        let reopened = reopen(&dir).await;
        let shared = reopened.shared();
        let read = shared.read();
        assert_eq!(read.state.snapshot(), expected);
        assert_eq!(read.last_applied, last_applied);
        assert_eq!(read.state.size, read.state.keyspace.retained_bytes());
    }

    /// Defragmenting gives the space a compaction freed back to the
    /// filesystem and keeps every record; a reader holding a transaction
    /// makes it wait, not fail.
    #[tokio::test(flavor = "multi_thread")]
    async fn defragment_shrinks_the_file_after_a_compaction_and_keeps_the_state() {
        let dir = uc_testkit::TestDir::new("uc-store-state-db-defragment");
        let mut machine = StateMachine::open(&dir, true).unwrap();
        let big = |i: usize| {
            Command::Put(PutRequest {
                key: format!("k{i:04}").into_bytes(),
                value: vec![b'v'; 4096],
                ..Default::default()
            })
        };
        // Every key twice: compacting to the last revision drops the first
        // 1000 values.
        let mut commands: Vec<Command> = (0..1000).chain(0..1000).map(big).collect();
        commands.push(Command::Compact { revision: 2001 });
        machine.apply(entries(commands, 1)).await.unwrap();
        let shared = machine.shared();
        shared.flush().await.unwrap();
        let expected = shared.read().state.snapshot();

        // A snapshot being read: the defragmentation waits for it.
        let reader = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || {
                let txn = shared.db.begin_read().unwrap();
                std::thread::sleep(Duration::from_millis(300));
                drop(txn);
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done = shared.defragment().await.unwrap();
        reader.await.unwrap();
        assert!(
            done.after * 3 < done.before * 2,
            "{done:?}: a compaction freed half the records"
        );
        assert_eq!(
            std::fs::metadata(dir.join(STATE_FILE)).unwrap().len(),
            done.after
        );
        machine
            .apply(entries(vec![put("after", 0)], 2002))
            .await
            .unwrap();
        let expected_after = shared.read().state.snapshot();
        assert_ne!(expected_after, expected);
        shared.flush().await.unwrap();
        drop((machine, shared));
        let reopened = reopen(&dir).await;
        assert_eq!(reopened.shared().read().state.snapshot(), expected_after);
    }

    /// A member that installs a snapshot replaces its whole database; what
    /// it applies after that lands on top, and a reopen gives the same.
    #[tokio::test]
    async fn an_installed_snapshot_replaces_the_database() {
        let source_dir = uc_testkit::TestDir::new("uc-store-state-db-source");
        let mut source = StateMachine::open(&source_dir, true).unwrap();
        source.apply(entries(history(), 1)).await.unwrap();
        let snapshot = source.build_snapshot().await.unwrap();

        let dir = uc_testkit::TestDir::new("uc-store-state-db-install");
        let mut machine = StateMachine::open(&dir, true).unwrap();
        machine
            .apply(entries(vec![put("old", 0), put("zz", 0)], 1))
            .await
            .unwrap();
        let index = snapshot.meta.last_log_id.unwrap().index;
        machine
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        machine
            .apply(entries(vec![put("after", 0)], index + 1))
            .await
            .unwrap();
        source
            .apply(entries(vec![put("after", 0)], index + 1))
            .await
            .unwrap();
        let expected = source.shared().read().state.snapshot();
        assert_eq!(machine.shared().read().state.snapshot(), expected);
        machine.shared().flush().await.unwrap();
        drop(machine);
        let reopened = reopen(&dir).await;
        assert_eq!(reopened.shared().read().state.snapshot(), expected);
        assert_eq!(
            reopened.shared().read().last_applied.unwrap().index,
            index + 1
        );
    }
}
