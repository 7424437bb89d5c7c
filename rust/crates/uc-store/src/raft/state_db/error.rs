//! What can go wrong with the state database, with the file it was about.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Cloned to every job that waits on the writer (redb's errors are held in
/// an `Arc` for that).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StateDbError {
    #[error("{}: in use by another uc-store process", path.display())]
    InUse { path: PathBuf },
    /// Opening, creating or loading the file at `path` failed.
    #[error("{}: {source}", path.display())]
    At {
        path: PathBuf,
        source: Box<StateDbError>,
    },
    #[error("{}: starting its writer: {source}", path.display())]
    StartWriter {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    #[error("the state writer stopped")]
    WriterStopped,
    /// An earlier commit failed: the database is behind the memory, and
    /// nothing more is written.
    #[error("state.redb: {0}")]
    Stopped(Box<StateDbError>),
    /// A defragmentation waited this long for snapshot readers.
    #[error("a snapshot was being read from the state database for {0:?}; try again later")]
    ReadersStayed(Duration),
    #[error(transparent)]
    Database(Arc<redb::DatabaseError>),
    #[error(transparent)]
    Redb(Arc<redb::Error>),
    #[error(transparent)]
    Compaction(Arc<redb::CompactionError>),
    /// A row that does not decode (`what`: which one).
    #[error("{what}: {source}")]
    Decode {
        what: &'static str,
        source: postcard::Error,
    },
    #[error(transparent)]
    Encode(postcard::Error),
    #[error("a key is attached to lease {lease}, which is not there")]
    KeyOfMissingLease { lease: i64 },
    /// The records do not make a keyspace.
    #[error(transparent)]
    State(crate::mvcc::SnapshotError),
}

impl StateDbError {
    /// This error, about the file at `path`.
    pub fn at(self, path: impl Into<PathBuf>) -> StateDbError {
        StateDbError::At {
            path: path.into(),
            source: Box::new(self),
        }
    }
}

impl<E: Into<redb::Error>> From<E> for StateDbError {
    fn from(err: E) -> Self {
        StateDbError::Redb(Arc::new(err.into()))
    }
}
