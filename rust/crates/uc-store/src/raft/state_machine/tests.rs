#![allow(clippy::unwrap_used)]
use super::*;
use crate::mvcc::PutRequest;
use crate::raft::snapshot::tests::sample;
use crate::raft::snapshot::LEGACY_SNAPSHOT_FILE;
use std::time::Duration;

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
