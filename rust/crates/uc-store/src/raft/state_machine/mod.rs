//! openraft's state machine over `State`. Every applied batch goes to the
//! state database (`state_db`), which a restart loads; openraft re-applies
//! the committed log after what it holds. The state is in memory too, for
//! reads. A snapshot is encoded from the database and written to
//! `<data-dir>/snapshot.bin` (atomically, with fsync) for members that are
//! behind and for Maintenance.Snapshot. Watchers hear every applied change
//! through `Shared::events`.

// openraft's traits return its (large) StorageError; helpers return it too.
#![allow(clippy::result_large_err)]

#[cfg(test)]
mod tests;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Instant;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StoredMembership,
};
use tokio::sync::broadcast;

use super::snapshot::{
    read_snapshot, save_blocking, SnapshotFile, SnapshotFileError, SNAPSHOT_FILE,
};
use super::state_db::{self, Batch, Position, StateDb, StateDbError, Step, STATE_FILE};
use super::{read_error, write_error, Member, NodeId, StorageError, TypeConfig};
use crate::lease::LeaseClock;
use crate::mvcc::Event;
use crate::state::{Applied, Changes, Command, Reply, State};

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
    /// Lease deadlines (not replicated: see `crate::lease`).
    pub leases: LeaseClock,
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

    /// Gives every lease a fresh TTL from now (a new leader does this, as etcd).
    pub fn refresh_leases(&self) {
        let machine = self.read();
        let leases = machine.state.leases.values();
        self.leases
            .refresh(leases.map(|lease| (lease.id, lease.ttl)));
    }

    /// The state as the database has it now, as a snapshot file (without
    /// fsync: for Maintenance.Snapshot). Holds no lock on the state.
    /// Returns the bytes and their revision.
    pub fn snapshot_bytes(&self) -> Result<(Vec<u8>, i64), StateDbError> {
        let txn = self.db.begin_read()?;
        let encoded = state_db::encode_snapshot(&txn, |p| self.snapshot_id(p))?;
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
    pub fn state_commit_durations(&self) -> uc_daemon::metrics::Histogram {
        self.db.commit_durations()
    }

    /// Rewrites the state database without its free pages (Maintenance.Defragment).
    pub async fn defragment(&self) -> Result<state_db::Defragmented, StateDbError> {
        self.db.defragment().await
    }

    /// Writes everything applied to the disk (on shutdown: a restart then
    /// re-applies nothing).
    pub async fn flush(&self) -> Result<(), StateDbError> {
        self.db.checkpoint().await.map(drop)
    }

    /// Extends a lease; returns its TTL, or None if it does not exist.
    pub fn keep_alive(&self, id: i64) -> Option<i64> {
        let ttl = self.read().state.leases.get(&id)?.ttl;
        self.leases.extend(id, ttl);
        Some(ttl)
    }

    /// Seconds left on a lease (by this member's clock), if it exists.
    pub fn remaining(&self, id: i64) -> Option<i64> {
        let machine = self.read();
        let lease = machine.state.leases.get(&id)?;
        Some(self.leases.remaining(lease.id, lease.ttl))
    }

    /// Leases whose deadline passed.
    pub fn expired(&self) -> Vec<i64> {
        self.leases.expired()
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

/// Why the state machine could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    StateDb(#[from] StateDbError),
    #[error(transparent)]
    SnapshotFile(#[from] SnapshotFileError),
    /// The snapshot of an older version, which was to seed the database.
    #[error("{}: {source}", path.display())]
    Snapshot {
        path: PathBuf,
        source: SnapshotFileError,
    },
    #[error("{}: {source}", path.display())]
    State {
        path: PathBuf,
        source: crate::mvcc::SnapshotError,
    },
}

#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl StateMachine {
    /// Opens the state database in `data_dir` and loads what it holds. A
    /// data dir of a version that kept the state only in its snapshot file
    /// is loaded from that file, which then seeds the database. `fsync`
    /// as for the log (false: `--unsafe-no-fsync`).
    pub fn open(data_dir: &Path, fsync: bool) -> Result<StateMachine, OpenError> {
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
                    let file =
                        SnapshotFile::decode(&bytes).map_err(|source| OpenError::Snapshot {
                            path: path.clone(),
                            source,
                        })?;
                    let state = State::restore(&file.state).map_err(|source| OpenError::State {
                        path: path.clone(),
                        source,
                    })?;
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
                leases: LeaseClock::default(),
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

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let started = Instant::now();
        // The snapshot is of what is durable: openraft purges the log
        // behind it, and a restart re-applies the log from what is on disk.
        let txn = self.shared.db.checkpoint().await.map_err(write_error)?;
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
            let mut deadlines = self.shared.leases.lock();
            for step in &steps {
                match step {
                    Step::Grant { id, ttl } => {
                        deadlines.granted(*id, *ttl, now);
                    }
                    Step::Revoke(id) => {
                        deadlines.revoked(*id);
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
            .map_err(write_error)?;
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
            let file = SnapshotFile::decode(&bytes).map_err(read_error)?;
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
            .map_err(write_error)?;
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
        let Some((_, bytes)) = read_snapshot(&self.shared.snapshot_path).map_err(read_error)?
        else {
            return Ok(None);
        };
        let meta = SnapshotFile::decode_meta(&bytes).map_err(read_error)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}
