//! openraft's state machine over `State`. The state lives in memory; a
//! snapshot of it is written to `<data-dir>/snapshot.json` (atomically, with
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

/// What `snapshot.json` holds and what is sent to a member that is behind.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, Member>,
    state: StateSnapshot,
}

#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl StateMachine {
    /// Loads the last snapshot from `data_dir`, if any.
    pub fn open(data_dir: &Path) -> Result<StateMachine, String> {
        let snapshot_path = data_dir.join("snapshot.json");
        let mut machine = Machine {
            state: State::default(),
            last_applied: None,
            last_membership: StoredMembership::default(),
        };
        match std::fs::read(&snapshot_path) {
            Ok(bytes) => {
                let file: SnapshotFile = serde_json::from_slice(&bytes).map_err(|e| {
                    format!("{}: not a uc-store snapshot: {e}", snapshot_path.display())
                })?;
                machine.state = State::restore(&file.state)
                    .map_err(|e| format!("{}: {e}", snapshot_path.display()))?;
                machine.last_applied = file.meta.last_log_id;
                machine.last_membership = file.meta.last_membership;
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(format!("{}: {err}", snapshot_path.display())),
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

    fn save(&self, file: &SnapshotFile) -> Result<Vec<u8>, StorageError> {
        let bytes = serde_json::to_vec(file).map_err(write_error)?;
        write_atomically(&self.shared.snapshot_path, &bytes).map_err(write_error)?;
        Ok(bytes)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
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
        let file = {
            let machine = self.shared.read();
            let counter = self.shared.snapshot_counter.fetch_add(1, Ordering::Relaxed);
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
        };
        let bytes = self.save(&file)?;
        tracing::info!(last_log_id = ?file.meta.last_log_id, bytes = bytes.len(), "snapshot built");
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
        let file: SnapshotFile = serde_json::from_slice(&bytes).map_err(read_error)?;
        let state = State::restore(&file.state).map_err(read_error)?;
        let file = SnapshotFile {
            meta: meta.clone(),
            state: file.state,
        };
        self.save(&file)?;
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
        match std::fs::read(&self.shared.snapshot_path) {
            Ok(bytes) => {
                let file: SnapshotFile = serde_json::from_slice(&bytes).map_err(read_error)?;
                Ok(Some(Snapshot {
                    meta: file.meta,
                    snapshot: Box::new(Cursor::new(bytes)),
                }))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(read_error(err)),
        }
    }
}
