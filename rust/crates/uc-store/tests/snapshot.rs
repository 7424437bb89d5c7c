//! Snapshot/restore: the plain-data form a Raft state machine installs.

use uc_store::mvcc::{
    DeleteRangeRequest, EventKind, Keyspace, PutRequest, RangeOptions, Record, RequestOp, Snapshot,
    SnapshotError, TxnRequest,
};

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

/// A store with history, deletes, multi-key revisions and a compaction.
fn busy() -> Keyspace {
    let mut ks = Keyspace::new();
    ks.put(&put("a", "1")).expect("put"); // 2
    ks.txn(&TxnRequest {
        success: vec![RequestOp::Put(put("b", "1")), RequestOp::Put(put("c", "1"))],
        ..Default::default()
    })
    .expect("txn"); // 3
    ks.put(&put("a", "2")).expect("put"); // 4
    ks.delete_range(&DeleteRangeRequest {
        key: b"b".to_vec(),
        range_end: b"d".to_vec(),
        prev_kv: false,
    })
    .expect("delete"); // 5
    ks.put(&put("c", "again")).expect("put"); // 6
    ks.compact(4).expect("compact");
    ks.put(&put("a", "3")).expect("put"); // 7
    ks
}

#[test]
fn round_trip_gives_an_equal_store() {
    let ks = busy();
    let snapshot = ks.snapshot();
    assert_eq!(snapshot.revision, 7);
    assert_eq!(snapshot.compacted_revision, 4);
    let order: Vec<_> = snapshot.records.iter().map(|r| (r.main, r.sub)).collect();
    assert_eq!(
        order,
        [(3, 0), (3, 1), (4, 0), (5, 0), (5, 1), (6, 0), (7, 0)],
        "history from the compacted revision on, in revision order"
    );
    assert_eq!(snapshot.records[3].kind, EventKind::Delete);
    assert_eq!(snapshot.records[3].kv.key, b"b");
    assert_eq!(snapshot.records[3].kv.mod_revision, 5);

    let restored = Keyspace::restore(&snapshot).expect("restore");
    assert_eq!(restored, ks);
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(
        restored.events_since(b"\0", b"\0", 4),
        ks.events_since(b"\0", b"\0", 4)
    );
    let historical = RangeOptions {
        revision: 5,
        ..Default::default()
    };
    assert_eq!(
        restored.range(b"\0", b"\0", historical),
        ks.range(b"\0", b"\0", historical)
    );
}

#[test]
fn a_restored_store_carries_on_identically() {
    let mut original = busy();
    let mut restored = Keyspace::restore(&original.snapshot()).expect("restore");
    let next = PutRequest {
        prev_kv: true,
        ..put("c", "later")
    };
    assert_eq!(original.put(&next), restored.put(&next));
    assert_eq!(original.compact(6), restored.compact(6));
    assert_eq!(original, restored);
    let c = restored
        .range(b"c", b"", RangeOptions::default())
        .expect("range");
    assert_eq!((c.kvs[0].create_revision, c.kvs[0].version), (6, 2));
}

#[test]
fn an_empty_store_round_trips() {
    let ks = Keyspace::new();
    let snapshot = ks.snapshot();
    assert_eq!(
        snapshot,
        Snapshot {
            revision: 1,
            compacted_revision: 0,
            records: vec![]
        }
    );
    assert_eq!(Keyspace::restore(&snapshot), Ok(ks));
}

#[test]
fn inconsistent_snapshots_are_refused() {
    let good = busy().snapshot();

    let mut bad = good.clone();
    bad.compacted_revision = 8;
    assert_eq!(
        Keyspace::restore(&bad),
        Err(SnapshotError::Revisions {
            revision: 7,
            compacted: 8
        })
    );

    let mut bad = good.clone();
    bad.records.swap(0, 1);
    assert!(matches!(
        Keyspace::restore(&bad),
        Err(SnapshotError::Record {
            main: 3,
            sub: 0,
            ..
        })
    ));

    let mut bad = good.clone();
    bad.revision = 6;
    assert!(matches!(
        Keyspace::restore(&bad),
        Err(SnapshotError::Record { main: 7, .. })
    ));

    let mut bad = good;
    let record: &mut Record = &mut bad.records[0];
    record.kv.mod_revision = 2;
    let err = Keyspace::restore(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "snapshot: record 3/0 carries mod revision 2"
    );
}
