//! The Raft log, vote and commit index in redb. Appends are group-committed:
//! a writer thread takes every append (and truncate/purge) queued since its
//! last commit into one redb write transaction, commits it with fsync
//! (unless the operator chose `unsafe_no_fsync`, as etcd's
//! --unsafe-no-fsync), and only then tells openraft the entries are durable,
//! so an acknowledged write survives a crash. Entries waiting for the writer,
//! and the newest ones it wrote, are served to readers from memory: the
//! leader's replication reads each entry right after appending it.

// openraft's traits return its (large) StorageError; helpers return it too.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, Vote};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uc_daemon::metrics::{latency_histogram, Histogram};

use super::zero_filled::ZeroFilledFile;
use super::{read_error, write_error, NodeId, StorageError, TypeConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// How often the commit index goes to the disk (with appends) at most.
const COMMIT_INDEX_EVERY: Duration = Duration::from_secs(1);

/// Written entries kept in memory for readers (followers this close behind
/// are sent entries without a database read and decode).
const RECENT_ENTRIES: usize = 128;

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    durability: Durability,
    volatile: Arc<Mutex<Volatile>>,
    jobs: mpsc::Sender<Job>,
    committed: CommitIndex,
    commits: Histogram,
}

/// The commit index as openraft last saved it: it saves it before applying
/// up to it, so every acknowledged write is at or below it.
#[derive(Clone, Default)]
pub struct CommitIndex(Arc<Mutex<Option<LogId<NodeId>>>>);

impl CommitIndex {
    pub fn get(&self) -> Option<LogId<NodeId>> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, committed: Option<LogId<NodeId>>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = committed;
    }
}

/// What readers must see that the database does not have yet, and the
/// newest entries it has. `recent` and `unflushed` together always hold a
/// gap-free tail of the log: appends extend it, truncates and purges cut
/// both, and an entry moves from one to the other only as it is written.
#[derive(Default)]
struct Volatile {
    /// Appended, not yet committed by the writer.
    unflushed: BTreeMap<u64, Entry<TypeConfig>>,
    /// The newest written entries, at most RECENT_ENTRIES.
    recent: BTreeMap<u64, Entry<TypeConfig>>,
    /// Database entries from this index on are truncated (queued).
    hide_from: Option<u64>,
    truncates_queued: u64,
    last_purged: Option<LogId<NodeId>>,
}

/// A commit's outcome, for everyone waiting on it.
type Done = tokio::sync::oneshot::Sender<Result<(), Arc<redb::Error>>>;

enum Job {
    /// Entries and openraft's callback (None: tests, which wait with Sync).
    Append(
        Vec<(LogId<NodeId>, Vec<u8>)>,
        Option<LogFlushed<TypeConfig>>,
    ),
    Truncate(u64, Done),
    Purge(LogId<NodeId>, Done),
    /// The commit index, encoded; nobody waits for it (see `writer`).
    Committed(Vec<u8>),
    /// Writes whatever the writer holds back (on shutdown).
    Sync(Done),
}

/// Commits queued jobs in batches, in order, until every `LogStore` is gone.
fn writer(
    db: Arc<Database>,
    durability: Durability,
    volatile: Arc<Mutex<Volatile>>,
    jobs: mpsc::Receiver<Job>,
    commits: Histogram,
) {
    // The newest commit index not yet written. It rides along with a batch
    // that goes to the disk anyway, at most once per COMMIT_INDEX_EVERY:
    // writing it with every batch costs each commit a few more pages (about
    // a quarter of the writer's CPU per put, measured), and a stale one is
    // harmless (see save_committed).
    let mut deferred: Option<Job> = None;
    let mut written_at: Option<Instant> = None;
    let mut slow = SlowCommits::default();
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::with_capacity(1);
        for job in std::iter::once(first).chain(std::iter::from_fn(|| jobs.try_recv().ok())) {
            match job {
                Job::Committed(_) => deferred = Some(job),
                job => batch.push(job),
            }
        }
        if batch.is_empty() {
            continue;
        }
        let sync = batch.iter().any(|job| matches!(job, Job::Sync(_)));
        if sync || written_at.is_none_or(|at| at.elapsed() >= COMMIT_INDEX_EVERY) {
            if let Some(job) = deferred.take() {
                batch.push(job);
                written_at = Some(Instant::now());
            }
        }
        let started = Instant::now();
        let result = commit_batch(&db, durability, &batch).map_err(Arc::new);
        let took = started.elapsed();
        commits.observe(took.as_secs_f64());
        if let Some((count, worst)) = slow.note(took, Instant::now()) {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                slow_commits = count,
                worst_ms = worst.as_millis() as u64,
                "a Raft log commit (fsync included) took over {} ms: writes wait for the disk; \
                 check it (uc_store_disk_log_commit_duration_seconds; etcd's guidance is a p99 \
                 under 10 ms)",
                SLOW_COMMIT.as_millis()
            );
        }
        tracing::trace!(jobs = batch.len(), "raft log batch committed");
        if let Err(err) = &result {
            tracing::error!(%err, "writing the Raft log failed");
        }
        let mut written = Vec::new();
        let mut truncates = 0;
        for job in batch {
            match job {
                Job::Append(entries, callback) => {
                    written.extend(entries.into_iter().map(|(id, _)| id));
                    if let Some(callback) = callback {
                        callback.log_io_completed(result.clone().map_err(std::io::Error::other));
                    }
                }
                Job::Truncate(_, done) => {
                    truncates += 1;
                    let _ = done.send(result.clone());
                }
                Job::Purge(_, done) | Job::Sync(done) => {
                    let _ = done.send(result.clone());
                }
                Job::Committed(_) => {}
            }
        }
        if result.is_ok() {
            let mut v = volatile.lock().unwrap_or_else(|p| p.into_inner());
            v.truncates_queued = v.truncates_queued.saturating_sub(truncates);
            if v.truncates_queued == 0 {
                v.hide_from = None;
            }
            for id in written {
                // Unless a later append replaced it meanwhile.
                if v.unflushed.get(&id.index).is_some_and(|e| e.log_id == id) {
                    if let Some(entry) = v.unflushed.remove(&id.index) {
                        v.recent.insert(id.index, entry);
                    }
                }
            }
            while v.recent.len() > RECENT_ENTRIES {
                v.recent.pop_first();
            }
        }
    }
    // On shutdown (every LogStore dropped), so a restart applies up to it.
    if let Some(job) = deferred {
        if let Err(err) = commit_batch(&db, durability, &[job]) {
            tracing::warn!(%err, "saving the commit index failed");
        }
    }
}

/// A log commit slower than this is logged as a warning.
const SLOW_COMMIT: Duration = Duration::from_millis(100);
/// At most one such warning this often; it counts the ones in between.
const SLOW_WARNING_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
struct SlowCommits {
    warned_at: Option<Instant>,
    count: u64,
    worst: Duration,
}

impl SlowCommits {
    /// A commit took `took`; if a warning is due, the slow commits since
    /// the last one (this one included) and the slowest of them.
    fn note(&mut self, took: Duration, now: Instant) -> Option<(u64, Duration)> {
        if took < SLOW_COMMIT {
            return None;
        }
        self.count += 1;
        self.worst = self.worst.max(took);
        if self
            .warned_at
            .is_some_and(|at| now.duration_since(at) < SLOW_WARNING_EVERY)
        {
            return None;
        }
        self.warned_at = Some(now);
        let due = (self.count, self.worst);
        (self.count, self.worst) = (0, Duration::ZERO);
        Some(due)
    }
}

fn commit_batch(db: &Database, durability: Durability, batch: &[Job]) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(durability)?;
    {
        let mut table = txn.open_table(LOG)?;
        let mut meta = txn.open_table(META)?;
        for job in batch {
            match job {
                Job::Append(entries, _) => {
                    for (id, bytes) in entries {
                        table.insert(id.index, bytes.as_slice())?;
                    }
                }
                Job::Truncate(index, _) => {
                    table.retain_in::<u64, _>(*index.., |_, _| false)?;
                }
                Job::Purge(log_id, _) => {
                    let bytes = super::encode(&Some(*log_id)).unwrap_or_default();
                    meta.insert(LAST_PURGED, bytes.as_slice())?;
                    table.retain_in::<u64, _>(
                        (Bound::Unbounded, Bound::Included(log_id.index)),
                        |_, _| false,
                    )?;
                }
                Job::Committed(bytes) => {
                    meta.insert(COMMITTED, bytes.as_slice())?;
                }
                Job::Sync(_) => {}
            }
        }
    }
    txn.commit()?;
    Ok(())
}

impl LogStore {
    /// Opens (or creates) the log database at `path` and starts its writer.
    pub fn open(path: &Path, fsync: bool) -> Result<LogStore, redb::DatabaseError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let db = Arc::new(Database::builder().create_with_backend(ZeroFilledFile::new(file)?)?);
        let durability = if fsync {
            Durability::Immediate
        } else {
            Durability::None
        };
        let (jobs, queue) = mpsc::channel();
        let store = LogStore {
            db: db.clone(),
            durability,
            volatile: Arc::new(Mutex::new(Volatile::default())),
            jobs,
            committed: CommitIndex::default(),
            commits: latency_histogram(),
        };
        let purged = store.meta(LAST_PURGED).ok().flatten().flatten();
        store.volatile().last_purged = purged;
        let (volatile, commits) = (store.volatile.clone(), store.commits.clone());
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer(db, durability, volatile, queue, commits))
            .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
        Ok(store)
    }

    /// Writes what the writer holds back (the commit index) and waits.
    pub async fn sync(&self) -> Result<(), StorageError> {
        self.queue_and_wait(Job::Sync).await
    }

    /// How long the writer's commits take (with their fsync).
    pub fn commit_durations(&self) -> Histogram {
        self.commits.clone()
    }

    pub fn commit_index(&self) -> CommitIndex {
        self.committed.clone()
    }

    fn volatile(&self) -> MutexGuard<'_, Volatile> {
        self.volatile.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queue_append(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
        callback: Option<LogFlushed<TypeConfig>>,
    ) -> Result<(), StorageError> {
        let mut encoded = Vec::new();
        let mut staged = Vec::new();
        for entry in entries {
            encoded.push((entry.log_id, super::encode(&entry).map_err(write_error)?));
            staged.push(entry);
        }
        {
            let mut v = self.volatile();
            for entry in staged {
                v.unflushed.insert(entry.log_id.index, entry);
            }
        }
        self.queue(Job::Append(encoded, callback))
    }

    fn queue(&self, job: Job) -> Result<(), StorageError> {
        self.jobs
            .send(job)
            .map_err(|_| write_error(std::io::Error::other("the Raft log writer stopped")))
    }

    async fn queue_and_wait(&self, make: impl FnOnce(Done) -> Job) -> Result<(), StorageError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.queue(make(done))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(write_error(std::io::Error::other(err))),
            Err(_) => Err(write_error(std::io::Error::other(
                "the Raft log writer stopped",
            ))),
        }
    }

    fn meta<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StorageError> {
        let txn = self.db.begin_read().map_err(read_error)?;
        let table = match txn.open_table(META) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(err) => return Err(read_error(err)),
        };
        match table.get(name).map_err(read_error)? {
            None => Ok(None),
            Some(bytes) => super::decode(bytes.value()).map(Some).map_err(read_error),
        }
    }

    /// Writes one meta value with the log's durability, waiting for it.
    fn set_meta<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StorageError> {
        let bytes = super::encode(value).map_err(write_error)?;
        let mut txn = self.db.begin_write().map_err(write_error)?;
        txn.set_durability(self.durability).map_err(write_error)?;
        {
            let mut table = txn.open_table(META).map_err(write_error)?;
            table.insert(name, bytes.as_slice()).map_err(write_error)?;
        }
        txn.commit().map_err(write_error)
    }

    /// The log as readers see it: the database, minus what is truncated or
    /// purged but not yet written, plus what is appended but not yet written.
    fn entries(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<BTreeMap<u64, Entry<TypeConfig>>, StorageError> {
        let (unflushed, hide_from, purged) = {
            let v = self.volatile();
            let first_in_memory = v.recent.keys().chain(v.unflushed.keys()).next().copied();
            let from = match start {
                Bound::Included(index) => index,
                Bound::Excluded(index) => index.saturating_add(1),
                Bound::Unbounded => 0,
            };
            if first_in_memory.is_some_and(|first| from >= first) {
                // Everything from `first` on is in memory (see `Volatile`).
                return Ok(v
                    .recent
                    .range((start, end))
                    .chain(v.unflushed.range((start, end)))
                    .map(|(i, e)| (*i, e.clone()))
                    .collect());
            }
            let unflushed: Vec<(u64, Entry<TypeConfig>)> = v
                .unflushed
                .range((start, end))
                .map(|(i, e)| (*i, e.clone()))
                .collect();
            (unflushed, v.hide_from, v.last_purged.map(|id| id.index))
        };
        let mut entries = BTreeMap::new();
        let txn = self.db.begin_read().map_err(read_error)?;
        match txn.open_table(LOG) {
            Ok(table) => {
                for item in table.range::<u64>((start, end)).map_err(read_error)? {
                    let (index, bytes) = item.map_err(read_error)?;
                    let index = index.value();
                    if hide_from.is_some_and(|h| index >= h) || purged.is_some_and(|p| index <= p) {
                        continue;
                    }
                    let entry = super::decode(bytes.value()).map_err(read_error)?;
                    entries.insert(index, entry);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(err) => return Err(read_error(err)),
        }
        entries.extend(unflushed);
        Ok(entries)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let entries = self.entries(range.start_bound().cloned(), range.end_bound().cloned())?;
        Ok(entries.into_values().collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let (unflushed_last, hide_from, last_purged) = {
            let v = self.volatile();
            let last = (v.unflushed.values().next_back())
                .or(v.recent.values().next_back())
                .map(|e| e.log_id);
            (last, v.hide_from, v.last_purged)
        };
        // The newest entry: in memory if anything waits for the writer,
        // otherwise the last one on disk that is not truncated or purged.
        let last = match unflushed_last {
            Some(id) => Some(id),
            None => {
                let txn = self.db.begin_read().map_err(read_error)?;
                match txn.open_table(LOG) {
                    Ok(table) => {
                        let end = hide_from.map_or(Bound::Unbounded, Bound::Excluded);
                        let last = table
                            .range::<u64>((Bound::Unbounded, end))
                            .map_err(read_error)?
                            .next_back()
                            .transpose()
                            .map_err(read_error)?;
                        match last {
                            Some((_, bytes)) => {
                                let entry: Entry<TypeConfig> =
                                    super::decode(bytes.value()).map_err(read_error)?;
                                Some(entry.log_id)
                            }
                            None => None,
                        }
                    }
                    Err(redb::TableError::TableDoesNotExist(_)) => None,
                    Err(err) => return Err(read_error(err)),
                }
            }
        };
        // Entries at or below the purge point are gone whatever the disk says.
        let last = match (last, last_purged) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.set_meta(VOTE, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.meta(VOTE)
    }

    // Handed to the writer, not waited for: it is written with a later
    // append (at most once a second) or on shutdown, and a stale commit
    // index only means applying less on start (the leader tells the rest).
    // Writing it here would wait for redb's one writer, i.e. for the fsync
    // of the appends in flight, and stall the Raft core behind every commit.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError> {
        self.committed.set(committed);
        let bytes = super::encode(&committed).map_err(write_error)?;
        self.queue(Job::Committed(bytes))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        // The newest one saved, written or not.
        match self.committed.get() {
            Some(committed) => Ok(Some(committed)),
            None => Ok(self.meta::<Option<LogId<NodeId>>>(COMMITTED)?.flatten()),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.queue_append(entries, Some(callback))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        {
            let mut v = self.volatile();
            v.unflushed.retain(|index, _| *index < log_id.index);
            v.recent.retain(|index, _| *index < log_id.index);
            v.hide_from = Some(v.hide_from.map_or(log_id.index, |h| h.min(log_id.index)));
            v.truncates_queued += 1;
        }
        self.queue_and_wait(|done| Job::Truncate(log_id.index, done))
            .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        {
            let mut v = self.volatile();
            v.unflushed.retain(|index, _| *index > log_id.index);
            v.recent.retain(|index, _| *index > log_id.index);
            v.last_purged = Some(log_id);
        }
        self.queue_and_wait(|done| Job::Purge(log_id, done)).await
    }
}

#[cfg(test)]
mod tests;
