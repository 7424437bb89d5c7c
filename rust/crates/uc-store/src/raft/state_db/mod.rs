//! The state machine's record in redb (`<data-dir>/state.redb`), laid out
//! like etcd's backend: every retained change under its revision
//! (main, sub), the leases with their keys, and the applied position in one
//! row. The keyspace is held in memory too, for reads; this database is what
//! a restart loads it from and what snapshots are encoded from.
//!
//! A writer thread commits each applied batch, in order. Most commits skip
//! the fsync: the Raft log is durable, and openraft re-applies the log after
//! the last durable commit. A commit with fsync comes at least every
//! DURABLE_EVERY, before every snapshot (the log behind a snapshot is purged
//! only once the state up to it is on disk) and on shutdown. Without fsync
//! for the log (`--unsafe-no-fsync`) nothing here is synced either: a state
//! on disk ahead of the log it came from cannot be started from.
//!
//! Here the database's handle; `applied` is what the state machine hands
//! it, `writer` the thread that owns it, `tables` its layout and the reads
//! and writes of it.

mod applied;
mod error;
mod tables;
mod writer;

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use redb::{Database, Durability, ReadTransaction};
use tokio::sync::oneshot;
use uc_daemon::metrics::{latency_histogram, Histogram};

use crate::state::{State, StateSnapshot};
use tables::{create_tables, load, replace};
use writer::{Job, Writer};

pub use applied::{Batch, Position, Step};

pub use error::StateDbError;
pub use tables::{encode_snapshot, EncodedSnapshot};
pub use writer::Defragmented;

/// The state database, in the data dir.
pub const STATE_FILE: &str = "state.redb";

/// Pages cached in memory: reads are rare (start, snapshots), and the
/// records are written in revision order, so writes touch few pages.
const CACHE_BYTES: usize = 128 << 20;

/// A state database opened and loaded, its writer not started yet.
pub struct Opened {
    db: Database,
    path: std::path::PathBuf,
    /// The state it holds, or None for a new database.
    pub loaded: Option<(State, Position)>,
}

impl Opened {
    /// Writes a whole state, durably (a data dir of an older version).
    pub fn seed(&self, snapshot: &StateSnapshot, position: &Position) -> Result<(), StateDbError> {
        replace(&self.db, snapshot, position, Durability::Immediate)
    }

    /// Starts the writer, which owns the database from now on. `fsync`
    /// false: no commit is ever made durable.
    pub fn start(self, fsync: bool) -> Result<StateDb, StateDbError> {
        let (jobs, queue) = mpsc::channel();
        let failed = Arc::new(Mutex::new(None));
        let commits = latency_histogram();
        let writer = Writer {
            db: self.db,
            path: self.path.clone(),
            fsync,
            failed: failed.clone(),
            commits: commits.clone(),
        };
        std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| StateDbError::StartWriter {
                path: self.path.clone(),
                source: Arc::new(e),
            })?;
        Ok(StateDb {
            jobs,
            failed,
            commits,
        })
    }
}

/// The database's writer, which owns it. Cloning shares it.
#[derive(Clone)]
pub struct StateDb {
    jobs: mpsc::Sender<Job>,
    /// Set when a commit failed: the database is then behind the memory,
    /// and nothing more is written.
    failed: Arc<Mutex<Option<StateDbError>>>,
    commits: Histogram,
}

impl StateDb {
    /// Opens (or creates) the database and loads the state it holds.
    pub fn open(path: &Path) -> Result<Opened, StateDbError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StateDbError::InUse {
                    path: path.to_path_buf(),
                },
                other => StateDbError::Database(Arc::new(other)).at(path),
            })?;
        create_tables(&db).map_err(|e| e.at(path))?;
        let loaded = load(&db).map_err(|e| e.at(path))?;
        Ok(Opened {
            db,
            path: path.to_path_buf(),
            loaded,
        })
    }

    fn failure(&self) -> Option<StateDbError> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queues an applied batch; fails if an earlier commit failed.
    pub fn apply(&self, batch: Batch) -> Result<(), StateDbError> {
        if let Some(err) = self.failure() {
            return Err(err);
        }
        self.jobs
            .send(Job::Apply(batch))
            .map_err(|_| StateDbError::WriterStopped)
    }

    /// Replaces the whole state, durably, once queued batches are written.
    pub async fn replace(
        &self,
        snapshot: StateSnapshot,
        position: Position,
    ) -> Result<(), StateDbError> {
        self.ask(|done| Job::Replace(Box::new(snapshot), position, done))
            .await
    }

    /// Queues a job that answers, and waits for its answer.
    async fn ask<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StateDbError>>) -> Job,
    ) -> Result<T, StateDbError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(job(done))
            .map_err(|_| StateDbError::WriterStopped)?;
        wait.await.map_err(|_| StateDbError::WriterStopped)?
    }

    /// Writes every queued batch durably; returns a read transaction that
    /// sees exactly what is on disk now.
    pub async fn checkpoint(&self) -> Result<ReadTransaction, StateDbError> {
        self.ask(Job::Checkpoint).await
    }

    /// How long the writer's commits take (fsync included when made).
    pub fn commit_durations(&self) -> Histogram {
        self.commits.clone()
    }

    /// A read transaction at the last applied batch (maybe not durable).
    /// Blocks: for blocking threads.
    pub fn begin_read(&self) -> Result<ReadTransaction, StateDbError> {
        let (done, wait) = mpsc::channel();
        self.jobs
            .send(Job::Read(done))
            .map_err(|_| StateDbError::WriterStopped)?;
        wait.recv().map_err(|_| StateDbError::WriterStopped)?
    }

    /// Writes every queued batch durably, then rewrites the file without
    /// its free pages (as etcd's defragment: the space a compaction freed
    /// goes back to the filesystem). Applied batches queue meanwhile.
    pub async fn defragment(&self) -> Result<Defragmented, StateDbError> {
        self.ask(Job::Defragment).await
    }
}

/// Writes a new state database holding `snapshot`, durably, and closes it
/// (for `uc-store snapshot restore`).
pub fn create(
    path: &Path,
    snapshot: &StateSnapshot,
    position: &Position,
) -> Result<(), StateDbError> {
    let failed = |e: StateDbError| e.at(path);
    let db = Database::builder()
        .create(path)
        .map_err(|e| StateDbError::Database(Arc::new(e)).at(path))?;
    create_tables(&db).map_err(failed)?;
    replace(&db, snapshot, position, Durability::Immediate).map_err(failed)
}
