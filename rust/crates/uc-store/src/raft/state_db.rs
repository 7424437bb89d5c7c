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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::{LogId, SnapshotMeta, StoredMembership};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use uc_daemon::metrics::{Histogram, LATENCY_SECONDS};

use super::state_machine::{Changes, SNAPSHOT_MAGIC};
use super::{Member, NodeId};
use crate::mvcc::{EventKind, KeyValue, Record};
use crate::state::{Lease, State, StateSnapshot};

/// (main, sub) → postcard of the `Record`, exactly as snapshots carry it.
const RECORDS: TableDefinition<(i64, i64), &[u8]> = TableDefinition::new("records");
/// Lease id → granted TTL.
const LEASES: TableDefinition<i64, i64> = TableDefinition::new("leases");
/// (lease id, key) for every key attached to a lease.
const LEASE_KEYS: TableDefinition<(i64, &[u8]), ()> = TableDefinition::new("lease_keys");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const POSITION: &str = "position";

/// How long at most the database goes without a commit with fsync.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// How often at most applied batches are committed.
const COMMIT_EVERY: Duration = Duration::from_millis(10);

/// Pages cached in memory: reads are rare (start, snapshots), and the
/// records are written in revision order, so writes touch few pages.
const CACHE_BYTES: usize = 128 << 20;

/// What the state has applied, beside its records and leases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub revision: i64,
    pub compacted: i64,
    pub nospace: Vec<u64>,
    pub last_applied: Option<LogId<NodeId>>,
    pub last_membership: StoredMembership<NodeId, Member>,
}

impl Default for Position {
    /// An empty store, as etcd starts it: revision 1.
    fn default() -> Self {
        Position {
            revision: 1,
            compacted: 0,
            nospace: Vec::new(),
            last_applied: None,
            last_membership: StoredMembership::default(),
        }
    }
}

/// One change to the state, in the order the commands made them.
#[derive(Debug)]
pub enum Step {
    Changes(Arc<Changes>),
    Grant {
        id: i64,
        ttl: i64,
    },
    Revoke(i64),
    /// The revisions (main, sub) a compaction dropped.
    Compacted(Vec<(i64, i64)>),
}

/// What one `apply` call changed, and the position after it.
pub struct Batch {
    pub steps: Vec<Step>,
    pub position: Position,
}

type Done = oneshot::Sender<Result<(), String>>;

enum Job {
    Apply(Batch),
    /// Replaces everything with an installed snapshot (with fsync).
    Replace(Box<StateSnapshot>, Position, Done),
    /// Commits with fsync, then hands over a read transaction at that point.
    Checkpoint(oneshot::Sender<Result<ReadTransaction, String>>),
    /// Commits (without fsync), then hands over a read transaction.
    Read(mpsc::Sender<Result<ReadTransaction, String>>),
    /// Commits with fsync, then rewrites the file without its free pages.
    Defragment(oneshot::Sender<Result<Defragmented, String>>),
}

/// The file's size before and after a defragmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defragmented {
    pub before: u64,
    pub after: u64,
}

/// How long a defragmentation waits for readers (snapshots being encoded)
/// to finish before it gives up.
const DEFRAGMENT_WAIT: Duration = Duration::from_secs(30);

/// A state database opened and loaded, its writer not started yet.
pub struct Opened {
    db: Database,
    path: std::path::PathBuf,
    /// The state it holds, or None for a new database.
    pub loaded: Option<(State, Position)>,
}

impl Opened {
    /// Writes a whole state, durably (a data dir of an older version).
    pub fn seed(&self, snapshot: &StateSnapshot, position: &Position) -> Result<(), String> {
        replace(&self.db, snapshot, position, Durability::Immediate).map_err(|e| e.to_string())
    }

    /// Starts the writer, which owns the database from now on. `fsync`
    /// false: no commit is ever made durable.
    pub fn start(self, fsync: bool) -> Result<StateDb, String> {
        let (jobs, queue) = mpsc::channel();
        let failed = Arc::new(Mutex::new(None));
        let commits = Arc::new(Histogram::new(LATENCY_SECONDS));
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
            .map_err(|e| format!("{}: starting its writer: {e}", self.path.display()))?;
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
    failed: Arc<Mutex<Option<String>>>,
    commits: Arc<Histogram>,
}

#[derive(Serialize)]
struct RecordRef<'a> {
    main: i64,
    sub: i64,
    kind: EventKind,
    kv: &'a KeyValue,
}

impl StateDb {
    /// Opens (or creates) the database and loads the state it holds.
    pub fn open(path: &Path) -> Result<Opened, String> {
        let name = path.display();
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    format!("{name}: in use by another uc-store process")
                }
                other => format!("{name}: {other}"),
            })?;
        create_tables(&db).map_err(|e| format!("{name}: {e}"))?;
        let loaded = load(&db).map_err(|e| format!("{name}: {e}"))?;
        Ok(Opened {
            db,
            path: path.to_path_buf(),
            loaded,
        })
    }

    fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queues an applied batch; fails if an earlier commit failed.
    pub fn apply(&self, batch: Batch) -> Result<(), String> {
        if let Some(err) = self.failure() {
            return Err(err);
        }
        self.jobs
            .send(Job::Apply(batch))
            .map_err(|_| "the state writer stopped".to_string())
    }

    /// Replaces the whole state, durably, once queued batches are written.
    pub async fn replace(&self, snapshot: StateSnapshot, position: Position) -> Result<(), String> {
        self.ask(|done| Job::Replace(Box::new(snapshot), position, done))
            .await
    }

    /// Queues a job that answers, and waits for its answer.
    async fn ask<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Job,
    ) -> Result<T, String> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(job(done))
            .map_err(|_| "the state writer stopped".to_string())?;
        wait.await
            .map_err(|_| "the state writer stopped".to_string())?
    }

    /// Writes every queued batch durably; returns a read transaction that
    /// sees exactly what is on disk now.
    pub async fn checkpoint(&self) -> Result<ReadTransaction, String> {
        self.ask(Job::Checkpoint).await
    }

    /// How long the writer's commits take (fsync included when made).
    pub fn commit_durations(&self) -> Arc<Histogram> {
        self.commits.clone()
    }

    /// A read transaction at the last applied batch (maybe not durable).
    /// Blocks: for blocking threads.
    pub fn begin_read(&self) -> Result<ReadTransaction, String> {
        let (done, wait) = mpsc::channel();
        self.jobs
            .send(Job::Read(done))
            .map_err(|_| "the state writer stopped".to_string())?;
        wait.recv()
            .map_err(|_| "the state writer stopped".to_string())?
    }

    /// Writes every queued batch durably, then rewrites the file without
    /// its free pages (as etcd's defragment: the space a compaction freed
    /// goes back to the filesystem). Applied batches queue meanwhile.
    pub async fn defragment(&self) -> Result<Defragmented, String> {
        self.ask(Job::Defragment).await
    }
}

/// Writes a new state database holding `snapshot`, durably, and closes it
/// (for `uc-store snapshot restore`).
pub fn create(path: &Path, snapshot: &StateSnapshot, position: &Position) -> Result<(), String> {
    let failed = |e: StateDbError| format!("{}: {e}", path.display());
    let db = Database::builder()
        .create(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    create_tables(&db).map_err(failed)?;
    replace(&db, snapshot, position, Durability::Immediate).map_err(failed)
}

struct Writer {
    db: Database,
    path: std::path::PathBuf,
    fsync: bool,
    failed: Arc<Mutex<Option<String>>>,
    commits: Arc<Histogram>,
}

impl Writer {
    fn durable(&self) -> Durability {
        if self.fsync {
            Durability::Immediate
        } else {
            Durability::None
        }
    }

    fn commit(&self, batches: &[Batch], durability: Durability) -> Result<(), StateDbError> {
        let started = Instant::now();
        let result = commit(&self.db, batches, durability);
        self.commits.observe(started.elapsed());
        result
    }

    fn stopped(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A read transaction after `commit`, or the commit's error.
    fn read_after(&self, commit: &Result<(), StateDbError>) -> Result<ReadTransaction, String> {
        match commit {
            Ok(()) => self.db.begin_read().map_err(|e| e.to_string()),
            Err(err) => Err(err.to_string()),
        }
    }

    /// Compacts the file once no reader holds a transaction (snapshots
    /// being encoded hold one for seconds).
    fn defragment(&mut self) -> Result<Defragmented, String> {
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let before = size(&self.path);
        let started = Instant::now();
        loop {
            match self.db.compact() {
                Ok(_) => break,
                Err(redb::CompactionError::TransactionInProgress)
                    if started.elapsed() < DEFRAGMENT_WAIT =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(redb::CompactionError::TransactionInProgress) => {
                    return Err(format!(
                        "a snapshot was being read from the state database for {DEFRAGMENT_WAIT:?}; try again later"
                    ))
                }
                Err(err) => return Err(err.to_string()),
            }
        }
        let after = size(&self.path);
        tracing::info!(
            before,
            after,
            took_ms = started.elapsed().as_millis() as u64,
            "state database defragmented"
        );
        Ok(Defragmented { before, after })
    }

    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        let mut durable_at = Instant::now();
        let mut committed_at = Instant::now();
        while let Ok(first) = jobs.recv() {
            // Nobody waits for an applied batch to be written: gathering a
            // few milliseconds of them into one commit saves most of the
            // per-commit cost (checkpoints, rare, wait that long too).
            if let Some(wait) = COMMIT_EVERY.checked_sub(committed_at.elapsed()) {
                std::thread::sleep(wait);
            }
            committed_at = Instant::now();
            let mut applies = Vec::new();
            for job in std::iter::once(first).chain(jobs.try_iter()) {
                if let Some(err) = self.stopped() {
                    refuse(job, &err);
                    continue;
                }
                let result = match job {
                    Job::Apply(batch) => {
                        applies.push(batch);
                        Ok(())
                    }
                    Job::Replace(snapshot, position, done) => {
                        let result = self
                            .commit(&applies, Durability::None)
                            .and_then(|()| replace(&self.db, &snapshot, &position, self.durable()));
                        applies.clear();
                        durable_at = Instant::now();
                        let _ = done.send(result.clone().map_err(|e| e.to_string()));
                        result
                    }
                    Job::Checkpoint(done) => {
                        let result = self.commit(&applies, self.durable());
                        applies.clear();
                        durable_at = Instant::now();
                        let _ = done.send(self.read_after(&result));
                        result
                    }
                    Job::Read(done) => {
                        let result = self.commit(&applies, Durability::None);
                        applies.clear();
                        let _ = done.send(self.read_after(&result));
                        result
                    }
                    Job::Defragment(done) => {
                        let result = self.commit(&applies, self.durable());
                        applies.clear();
                        durable_at = Instant::now();
                        // A failed compaction leaves the database as it was
                        // (redb's compaction is transactional): it does not
                        // stop the writer.
                        let _ = done.send(match &result {
                            Ok(()) => self.defragment(),
                            Err(err) => Err(err.to_string()),
                        });
                        result
                    }
                };
                if let Err(err) = result {
                    stop(&self.failed, err);
                }
            }
            if applies.is_empty() {
                continue;
            }
            let durability = if durable_at.elapsed() >= DURABLE_EVERY {
                durable_at = Instant::now();
                self.durable()
            } else {
                Durability::None
            };
            if let Err(err) = self.commit(&applies, durability) {
                stop(&self.failed, err);
            }
        }
    }
}

fn stop(failed: &Mutex<Option<String>>, err: StateDbError) {
    tracing::error!(%err, "writing the state database failed; applying stops");
    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("state.redb: {err}"));
}

fn refuse(job: Job, err: &str) {
    match job {
        Job::Apply(_) => {}
        Job::Replace(_, _, done) => {
            let _ = done.send(Err(err.to_string()));
        }
        Job::Checkpoint(done) => {
            let _ = done.send(Err(err.to_string()));
        }
        Job::Read(done) => {
            let _ = done.send(Err(err.to_string()));
        }
        Job::Defragment(done) => {
            let _ = done.send(Err(err.to_string()));
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StateDbError(String);

impl<E: Into<redb::Error>> From<E> for StateDbError {
    fn from(err: E) -> Self {
        StateDbError(err.into().to_string())
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StateDbError> {
    super::encode(value).map_err(|e| StateDbError(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StateDbError> {
    super::decode(bytes).map_err(|e| StateDbError(format!("{what}: {e}")))
}

/// Writes applied batches in one transaction.
fn commit(db: &Database, batches: &[Batch], durability: Durability) -> Result<(), StateDbError> {
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

fn replace(
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
fn create_tables(db: &Database) -> Result<(), StateDbError> {
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
        let lease = leases.get_mut(&id).ok_or_else(|| {
            StateDbError(format!(
                "a key is attached to lease {id}, which is not there"
            ))
        })?;
        lease.keys.insert(key.to_vec());
    }
    Ok(leases.into_values().collect())
}

fn load(db: &Database) -> Result<Option<(State, Position)>, StateDbError> {
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
    let state = State::restore(&snapshot).map_err(|e| StateDbError(e.to_string()))?;
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
    let ser = |e: postcard::Error| StateDbError(e.to_string());
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
