//! The Raft log, vote and commit index in redb. Every append is one redb
//! write transaction committed with fsync (unless the operator chose
//! `unsafe_no_fsync`, as etcd's --unsafe-no-fsync) before openraft hears
//! it is durable: an acknowledged write survives a crash.

// openraft's traits return its (large) StorageError; helpers return it too.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, Vote};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{read_error, write_error, NodeId, StorageError, TypeConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    durability: Durability,
}

impl LogStore {
    /// Opens (or creates) the log database at `path`.
    pub fn open(path: &Path, fsync: bool) -> Result<LogStore, redb::DatabaseError> {
        let db = Database::create(path)?;
        Ok(LogStore {
            db: Arc::new(db),
            durability: if fsync {
                Durability::Immediate
            } else {
                Durability::None
            },
        })
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
            Some(bytes) => serde_json::from_slice(bytes.value())
                .map(Some)
                .map_err(read_error),
        }
    }

    fn set_meta<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        durability: Durability,
    ) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value).map_err(write_error)?;
        let mut txn = self.db.begin_write().map_err(write_error)?;
        txn.set_durability(durability).map_err(write_error)?;
        {
            let mut table = txn.open_table(META).map_err(write_error)?;
            table.insert(name, bytes.as_slice()).map_err(write_error)?;
        }
        txn.commit().map_err(write_error)
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, StorageError> {
        let txn = self.db.begin_read().map_err(read_error)?;
        let table = match txn.open_table(LOG) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(err) => return Err(read_error(err)),
        };
        let last = table.last().map_err(read_error)?;
        match last {
            None => Ok(None),
            Some((_, bytes)) => serde_json::from_slice(bytes.value())
                .map(Some)
                .map_err(read_error),
        }
    }

    /// Entries on disk, for `uc-store` diagnostics and tests.
    pub fn len(&self) -> Result<u64, StorageError> {
        let txn = self.db.begin_read().map_err(read_error)?;
        match txn.open_table(LOG) {
            Ok(table) => table.len().map_err(read_error),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(err) => Err(read_error(err)),
        }
    }

    pub fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.len()? == 0)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let txn = self.db.begin_read().map_err(read_error)?;
        let table = match txn.open_table(LOG) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(err) => return Err(read_error(err)),
        };
        let start = range.start_bound().cloned();
        let end = range.end_bound().cloned();
        let iter = table.range::<u64>((start, end)).map_err(read_error)?;
        let mut entries = Vec::new();
        for item in iter {
            let (_, bytes) = item.map_err(read_error)?;
            entries.push(serde_json::from_slice(bytes.value()).map_err(read_error)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId<NodeId>> = self.meta(LAST_PURGED)?;
        let last = self.last_entry()?.map(|e| e.log_id).or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.set_meta(VOTE, vote, self.durability)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.meta(VOTE)
    }

    // Not synced on its own: it becomes durable with the next append, and a
    // lost commit index only means re-applying from the snapshot on start.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError> {
        self.set_meta(COMMITTED, &committed, Durability::None)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self.meta::<Option<LogId<NodeId>>>(COMMITTED)?.flatten())
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
        let mut txn = self.db.begin_write().map_err(write_error)?;
        txn.set_durability(self.durability).map_err(write_error)?;
        {
            let mut table = txn.open_table(LOG).map_err(write_error)?;
            for entry in entries {
                let bytes = serde_json::to_vec(&entry).map_err(write_error)?;
                table
                    .insert(entry.log_id.index, bytes.as_slice())
                    .map_err(write_error)?;
            }
        }
        let result = txn.commit().map_err(std::io::Error::other);
        let failed = result.as_ref().err().map(|e| e.to_string());
        callback.log_io_completed(result);
        match failed {
            None => Ok(()),
            Some(err) => Err(write_error(std::io::Error::other(err))),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        let mut txn = self.db.begin_write().map_err(write_error)?;
        txn.set_durability(self.durability).map_err(write_error)?;
        {
            let mut table = txn.open_table(LOG).map_err(write_error)?;
            table
                .retain_in::<u64, _>(log_id.index.., |_, _| false)
                .map_err(write_error)?;
        }
        txn.commit().map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(&Some(log_id)).map_err(write_error)?;
        let mut txn = self.db.begin_write().map_err(write_error)?;
        txn.set_durability(self.durability).map_err(write_error)?;
        {
            let mut meta = txn.open_table(META).map_err(write_error)?;
            meta.insert(LAST_PURGED, bytes.as_slice())
                .map_err(write_error)?;
            let mut table = txn.open_table(LOG).map_err(write_error)?;
            table
                .retain_in::<u64, _>((Bound::Unbounded, Bound::Included(log_id.index)), |_, _| {
                    false
                })
                .map_err(write_error)?;
        }
        txn.commit().map_err(write_error)
    }
}
