//! openraft's own storage test suite against uc-store's Raft log (redb,
//! group commit) and state machine (snapshots on disk).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use openraft::testing::{StoreBuilder, Suite};
use uc_store::raft::log_store::LogStore;
use uc_store::raft::state_machine::StateMachine;
use uc_store::raft::{StorageError, TypeConfig};
use uc_testkit::TestDir;

struct Builder;

static NEXT: AtomicU32 = AtomicU32::new(0);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TestDir> for Builder {
    async fn build(&self) -> Result<(TestDir, LogStore, StateMachine), StorageError> {
        let dir = TestDir::new(&format!(
            "raft-suite-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&*dir).unwrap();
        let log = LogStore::open(&dir.join("raft.redb"), true).unwrap();
        let state_machine = StateMachine::open(&dir, true).unwrap();
        Ok((dir, log, state_machine))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).unwrap();
}
