//! etcd's MVCC semantics, checked against the keyspace directly.

use uc_store::mvcc::{EventKind, Keyspace, MvccError, RangeOptions, Write};

fn put(key: &str, value: &str) -> Write {
    Write::Put {
        key: key.into(),
        value: value.into(),
        lease: 0,
    }
}

fn del(key: &str, range_end: &[u8]) -> Write {
    Write::Delete {
        key: key.into(),
        range_end: range_end.to_vec(),
    }
}

fn get(
    ks: &Keyspace,
    key: &str,
    revision: i64,
) -> Result<Option<(i64, i64, i64, String)>, MvccError> {
    let r = ks.range(
        key.as_bytes(),
        b"",
        RangeOptions {
            revision,
            ..Default::default()
        },
    )?;
    Ok(r.kvs.first().map(|kv| {
        (
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            String::from_utf8_lossy(&kv.value).into_owned(),
        )
    }))
}

fn keys(
    ks: &Keyspace,
    key: &[u8],
    end: &[u8],
    options: RangeOptions,
) -> (Vec<String>, usize, bool) {
    let r = ks.range(key, end, options).expect("range");
    (
        r.kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect(),
        r.count,
        r.more,
    )
}

#[test]
fn revisions_versions_and_generations() {
    let mut ks = Keyspace::new();
    assert_eq!(ks.revision(), 1, "an empty etcd is at revision 1");
    assert_eq!(ks.apply(&[put("a", "1")]).0, 2);
    assert_eq!(ks.apply(&[put("a", "2")]).0, 3);
    assert_eq!(get(&ks, "a", 0), Ok(Some((2, 3, 2, "2".into()))));

    let (rev, events) = ks.apply(&[del("a", b"")]);
    assert_eq!(rev, 4);
    assert_eq!(events[0].kind, EventKind::Delete);
    assert_eq!(events[0].kv.mod_revision, 4);
    assert_eq!(events[0].prev_kv.as_ref().map(|kv| kv.version), Some(2));
    assert_eq!(get(&ks, "a", 0), Ok(None));

    // A delete of nothing changes nothing, not even the revision.
    assert_eq!(ks.apply(&[del("a", b"")]), (4, vec![]));

    // A put after a delete starts a new generation.
    ks.apply(&[put("a", "3")]);
    assert_eq!(get(&ks, "a", 0), Ok(Some((5, 5, 1, "3".into()))));
    // History stays readable.
    assert_eq!(get(&ks, "a", 3), Ok(Some((2, 3, 2, "2".into()))));
    assert_eq!(get(&ks, "a", 4), Ok(None));
}

#[test]
fn one_transaction_is_one_revision() {
    let mut ks = Keyspace::new();
    let (rev, events) = ks.apply(&[put("x", "1"), put("y", "1"), put("z", "1")]);
    assert_eq!(rev, 2);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.kv.mod_revision == 2));
    let (rev, events) = ks.apply(&[del("x", b"z"), put("w", "1")]);
    assert_eq!(rev, 3);
    let kinds: Vec<_> = events
        .iter()
        .map(|e| (e.kind, String::from_utf8_lossy(&e.kv.key).into_owned()))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventKind::Delete, "x".into()),
            (EventKind::Delete, "y".into()),
            (EventKind::Put, "w".into())
        ]
    );
}

#[test]
fn range_conventions_limit_and_count() {
    let mut ks = Keyspace::new();
    ks.apply(&[
        put("a", "1"),
        put("b/1", "1"),
        put("b/2", "1"),
        put("b/3", "1"),
        put("c", "1"),
    ]);
    let all = RangeOptions::default();
    assert_eq!(
        keys(&ks, b"b/", b"b0", all).0,
        ["b/1", "b/2", "b/3"],
        "prefix b/"
    );
    assert_eq!(
        keys(&ks, b"b/2", b"\0", all).0,
        ["b/2", "b/3", "c"],
        "from key"
    );
    assert_eq!(keys(&ks, b"\0", b"\0", all).0.len(), 5, "all keys");
    assert_eq!(
        keys(&ks, b"c", b"a", all).0.len(),
        0,
        "an inverted range is empty"
    );
    let limited = RangeOptions {
        limit: 2,
        ..Default::default()
    };
    assert_eq!(
        keys(&ks, b"b/", b"b0", limited),
        (vec!["b/1".into(), "b/2".into()], 3, true)
    );
    let counted = RangeOptions {
        count_only: true,
        ..Default::default()
    };
    assert_eq!(keys(&ks, b"b/", b"b0", counted), (vec![], 3, false));
}

#[test]
fn future_and_compacted_revisions_are_refused_with_etcds_texts() {
    let mut ks = Keyspace::new();
    for i in 0..5 {
        ks.apply(&[put("k", &i.to_string())]);
    }
    assert_eq!(ks.revision(), 6);
    let future = ks
        .range(
            b"k",
            b"",
            RangeOptions {
                revision: 7,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        future.to_string(),
        "etcdserver: mvcc: required revision is a future revision"
    );

    ks.compact(4).expect("compact");
    assert_eq!(
        get(&ks, "k", 4),
        Ok(Some((2, 4, 3, "2".into()))),
        "the compacted revision itself is readable"
    );
    let old = ks
        .range(
            b"k",
            b"",
            RangeOptions {
                revision: 3,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        old.to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(ks.compact(4), Err(MvccError::Compacted));
    assert_eq!(ks.compact(9), Err(MvccError::FutureRevision));
}

#[test]
fn compaction_keeps_live_keys_and_drops_deleted_ones() {
    let mut ks = Keyspace::new();
    ks.apply(&[put("keep", "1"), put("gone", "1")]); // 2
    ks.apply(&[del("gone", b"")]); // 3
    ks.apply(&[put("keep", "2")]); // 4
    ks.compact(3).expect("compact");
    assert_eq!(get(&ks, "keep", 3), Ok(Some((2, 2, 1, "1".into()))));
    assert_eq!(get(&ks, "keep", 0), Ok(Some((2, 4, 2, "2".into()))));
    assert_eq!(get(&ks, "gone", 3), Ok(None));
    // A new generation of a compacted-away key starts at version 1.
    ks.apply(&[put("gone", "again")]);
    assert_eq!(get(&ks, "gone", 0), Ok(Some((5, 5, 1, "again".into()))));
}

#[test]
fn watch_replay_in_revision_order_with_previous_values() {
    let mut ks = Keyspace::new();
    ks.apply(&[put("w/b", "1")]); // 2
    ks.apply(&[put("w/a", "1"), put("other", "x")]); // 3
    ks.apply(&[put("w/b", "2")]); // 4
    ks.apply(&[del("w/", b"w0")]); // 5
    let events = ks.events_since(b"w/", b"w0", 3).expect("replay");
    let seen: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.kind,
                String::from_utf8_lossy(&e.kv.key).into_owned(),
                e.kv.mod_revision,
                e.prev_kv.as_ref().map(|p| p.mod_revision),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (EventKind::Put, "w/a".into(), 3, None),
            (EventKind::Put, "w/b".into(), 4, Some(2)),
            (EventKind::Delete, "w/a".into(), 5, Some(3)),
            (EventKind::Delete, "w/b".into(), 5, Some(4)),
        ]
    );
    ks.compact(4).expect("compact");
    assert_eq!(ks.events_since(b"w/", b"w0", 3), Err(MvccError::Compacted));
    assert_eq!(
        ks.events_since(b"w/", b"w0", 4).map(|e| e.len()),
        Ok(3),
        "the put at 4 and both deletes"
    );
}

#[test]
fn applying_the_same_writes_gives_the_same_state() {
    let writes: Vec<Vec<Write>> = (0..50)
        .map(|i| match i % 4 {
            0 => vec![put(&format!("k{}", i % 7), &i.to_string())],
            1 => vec![del(&format!("k{}", i % 5), b"")],
            2 => vec![put("a", "1"), put("b", &i.to_string())],
            _ => vec![del("k", b"l")],
        })
        .collect();
    let mut one = Keyspace::new();
    let mut two = Keyspace::new();
    for w in &writes {
        assert_eq!(one.apply(w), two.apply(w));
    }
    assert_eq!(one, two);
}

#[test]
fn compaction_keeps_exactly_the_newest_live_version_at_or_below_it() {
    let mut ks = Keyspace::new();
    ks.apply(&[put("k", "1"), put("dead", "1")]); // 2
    ks.apply(&[put("k", "2")]); // 3
    ks.apply(&[put("k", "3"), del("dead", b"")]); // 4
    ks.apply(&[put("late", "1")]); // 5
    ks.apply(&[del("k", b"")]); // 6
    ks.compact(5).expect("compact");
    assert_eq!(ks.compacted_revision(), 5);
    let kept: Vec<_> = ks
        .snapshot()
        .records
        .iter()
        .map(|r| {
            (
                String::from_utf8_lossy(&r.kv.key).into_owned(),
                r.main,
                r.kind,
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            ("k".into(), 4, EventKind::Put),
            ("late".into(), 5, EventKind::Put),
            ("k".into(), 6, EventKind::Delete),
        ],
        "k's newest value at 5 (deleted later), late; nothing of dead"
    );
    assert_eq!(get(&ks, "k", 5), Ok(Some((2, 4, 3, "3".into()))));
    assert_eq!(get(&ks, "k", 0), Ok(None));
    assert_eq!(get(&ks, "dead", 5), Ok(None));
    // Replay from the compacted revision: the events at 5 and later only.
    let replay: Vec<_> = ks
        .events_since(b"\0", b"\0", 5)
        .expect("replay")
        .into_iter()
        .map(|e| (e.kind, e.kv.mod_revision, e.prev_kv.map(|p| p.value)))
        .collect();
    assert_eq!(
        replay,
        [
            (EventKind::Put, 5, None),
            (EventKind::Delete, 6, Some(b"3".to_vec())),
        ]
    );
    assert_eq!(
        ks.events_since(b"\0", b"\0", 4).unwrap_err().to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
}
