//! The state database's writer thread: it owns the database, commits the
//! applied batches it is sent, in order, a few milliseconds of them at a
//! time, and answers the jobs that need a commit first (checkpoints, reads,
//! an installed snapshot, a defragmentation).

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadTransaction, ReadableDatabase};
use tokio::sync::oneshot;
use uc_daemon::metrics::Histogram;

use super::applied::{Batch, Position};
use super::error::StateDbError;
use super::tables::{commit, replace};
use crate::state::StateSnapshot;

/// How long at most the database goes without a commit with fsync.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// How often at most applied batches are committed.
const COMMIT_EVERY: Duration = Duration::from_millis(10);

type Done = oneshot::Sender<Result<(), StateDbError>>;

pub(super) enum Job {
    Apply(Batch),
    /// Replaces everything with an installed snapshot (with fsync).
    Replace(Box<StateSnapshot>, Position, Done),
    /// Commits with fsync, then hands over a read transaction at that point.
    Checkpoint(oneshot::Sender<Result<ReadTransaction, StateDbError>>),
    /// Commits (without fsync), then hands over a read transaction.
    Read(mpsc::Sender<Result<ReadTransaction, StateDbError>>),
    /// Commits with fsync, then rewrites the file without its free pages.
    Defragment(oneshot::Sender<Result<Defragmented, StateDbError>>),
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

pub(super) struct Writer {
    pub(super) db: Database,
    pub(super) path: std::path::PathBuf,
    pub(super) fsync: bool,
    pub(super) failed: Arc<Mutex<Option<StateDbError>>>,
    pub(super) commits: Histogram,
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
        self.commits.observe(started.elapsed().as_secs_f64());
        result
    }

    fn stopped(&self) -> Option<StateDbError> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A read transaction after `commit`, or the commit's error.
    fn read_after(
        &self,
        commit: &Result<(), StateDbError>,
    ) -> Result<ReadTransaction, StateDbError> {
        match commit {
            Ok(()) => Ok(self.db.begin_read()?),
            Err(err) => Err(err.clone()),
        }
    }

    /// Compacts the file once no reader holds a transaction (snapshots
    /// being encoded hold one for seconds).
    fn defragment(&mut self) -> Result<Defragmented, StateDbError> {
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
                    return Err(StateDbError::ReadersStayed(DEFRAGMENT_WAIT))
                }
                Err(err) => return Err(StateDbError::Compaction(Arc::new(err))),
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

    pub(super) fn run(mut self, jobs: mpsc::Receiver<Job>) {
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
                        let _ = done.send(result.clone());
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
                            Err(err) => Err(err.clone()),
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

fn stop(failed: &Mutex<Option<StateDbError>>, err: StateDbError) {
    tracing::error!(%err, "writing the state database failed; applying stops");
    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(StateDbError::Stopped(Box::new(err)));
}

fn refuse(job: Job, err: &StateDbError) {
    match job {
        Job::Apply(_) => {}
        Job::Replace(_, _, done) => {
            let _ = done.send(Err(err.clone()));
        }
        Job::Checkpoint(done) => {
            let _ = done.send(Err(err.clone()));
        }
        Job::Read(done) => {
            let _ = done.send(Err(err.clone()));
        }
        Job::Defragment(done) => {
            let _ = done.send(Err(err.clone()));
        }
    }
}
