//! etcd's Txn semantics against the keyspace.

use uc_store::mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, Keyspace, MvccError, PutRequest,
    RangeOptions, RangeRequest, RequestError, RequestOp, ResponseOp, TxnRequest, Write,
    MAX_TXN_OPS,
};

fn cmp(key: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare {
        key: key.into(),
        range_end: vec![],
        result,
        target,
    }
}

fn put(key: &str, value: &str) -> RequestOp {
    RequestOp::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        prev_kv: true,
        ..Default::default()
    })
}

fn get(key: &str) -> RequestOp {
    RequestOp::Range(RangeRequest {
        key: key.into(),
        ..Default::default()
    })
}

fn value_of(ks: &Keyspace, key: &str) -> Option<String> {
    let r = ks
        .range(key.as_bytes(), b"", RangeOptions::default())
        .expect("range");
    r.kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

fn seeded() -> Keyspace {
    let mut ks = Keyspace::new();
    ks.apply(&[Write::Put {
        key: "a".into(),
        value: "1".into(),
        lease: 7,
    }]); // 2
    ks.apply(&[Write::Put {
        key: "a".into(),
        value: "2".into(),
        lease: 7,
    }]); // 3
    ks
}

#[test]
fn compares_on_every_target() {
    use CompareResult::*;
    use CompareTarget::*;
    let ks = seeded();
    let cases = [
        (cmp("a", Equal, Version(2)), true),
        (cmp("a", Greater, Version(1)), true),
        (cmp("a", Less, CreateRevision(2)), false),
        (cmp("a", Equal, ModRevision(3)), true),
        (cmp("a", NotEqual, Value(b"2".to_vec())), false),
        (cmp("a", Greater, Value(b"1".to_vec())), true),
        (cmp("a", Equal, Lease(7)), true),
        // A missing key compares as zeroes, but never on its value.
        (cmp("nope", Equal, Version(0)), true),
        (cmp("nope", Equal, CreateRevision(0)), true),
        (cmp("nope", Equal, Value(vec![])), false),
        (cmp("nope", NotEqual, Value(b"x".to_vec())), false),
    ];
    for (compare, expected) in cases {
        let mut ks = ks.clone();
        let request = TxnRequest {
            compare: vec![compare.clone()],
            success: vec![],
            failure: vec![],
        };
        assert_eq!(
            ks.txn(&request).expect("txn").succeeded,
            expected,
            "{compare:?}"
        );
    }
}

#[test]
fn range_compares_need_every_key() {
    let mut ks = Keyspace::new();
    ks.apply(&[
        Write::Put {
            key: "p/1".into(),
            value: "x".into(),
            lease: 0,
        },
        Write::Put {
            key: "p/2".into(),
            value: "x".into(),
            lease: 0,
        },
        Write::Put {
            key: "p/3".into(),
            value: "y".into(),
            lease: 0,
        },
    ]);
    let all_x = |end: &str| TxnRequest {
        compare: vec![Compare {
            key: "p/".into(),
            range_end: end.into(),
            result: CompareResult::Equal,
            target: CompareTarget::Value(b"x".to_vec()),
        }],
        ..Default::default()
    };
    assert!(!ks.txn(&all_x("p0")).expect("txn").succeeded);
    assert!(ks.txn(&all_x("p/3")).expect("txn").succeeded);
}

#[test]
fn a_txn_is_one_revision_and_reads_its_own_writes() {
    let mut ks = seeded();
    let request = TxnRequest {
        compare: vec![cmp(
            "a",
            CompareResult::Equal,
            CompareTarget::Value(b"2".to_vec()),
        )],
        success: vec![put("a", "3"), put("b", "1"), get("a"), get("b")],
        failure: vec![put("lost", "1")],
    };
    let response = ks.txn(&request).expect("txn");
    assert!(response.succeeded);
    assert_eq!(response.revision, 4, "four ops, one revision");
    let ResponseOp::Put(put_response) = &response.responses[0] else {
        panic!("{response:?}")
    };
    assert_eq!(
        put_response.prev_kv.as_ref().map(|kv| kv.value.clone()),
        Some(b"2".to_vec())
    );
    assert_eq!(put_response.revision, 4);
    let ResponseOp::Range(read) = &response.responses[2] else {
        panic!("{response:?}")
    };
    assert_eq!(read.kvs[0].value, b"3", "the read sees the txn's own put");
    assert_eq!(read.kvs[0].mod_revision, 4);
    assert_eq!(
        read.revision, 4,
        "a read after a write reports the new revision"
    );
    let ResponseOp::Range(read) = &response.responses[3] else {
        panic!("{response:?}")
    };
    assert_eq!(
        read.kvs[0].version, 1,
        "a key the txn created is visible to it"
    );
    assert_eq!(value_of(&ks, "a").as_deref(), Some("3"));
    assert_eq!(value_of(&ks, "lost"), None);

    // Only reads: no new revision.
    let reads = TxnRequest {
        success: vec![get("a")],
        ..Default::default()
    };
    assert_eq!(ks.txn(&reads).expect("txn").revision, 4);
}

#[test]
fn nested_txns_run_in_the_same_revision_and_compare_before_it() {
    let mut ks = seeded();
    let inner = TxnRequest {
        compare: vec![cmp(
            "b",
            CompareResult::Equal,
            CompareTarget::Value(b"new".to_vec()),
        )],
        success: vec![put("c", "inner-success")],
        failure: vec![put("c", "inner-failure"), get("b")],
    };
    let outer = TxnRequest {
        success: vec![put("b", "new"), RequestOp::Txn(inner.clone())],
        ..Default::default()
    };
    let response = ks.txn(&outer).expect("txn");
    assert_eq!(response.revision, 4);
    let ResponseOp::Txn(nested) = &response.responses[1] else {
        panic!("{response:?}")
    };
    // etcd evaluates every compare, nested ones too, before any op runs.
    assert!(
        !nested.succeeded,
        "the nested compare does not see the outer put"
    );
    assert_eq!(nested.revision, 0, "etcd leaves nested headers empty");
    let ResponseOp::Range(read) = &nested.responses[1] else {
        panic!("{nested:?}")
    };
    assert_eq!(read.kvs[0].value, b"new", "but its reads see the outer put");
    assert_eq!(value_of(&ks, "c").as_deref(), Some("inner-failure"));
    let c = ks.range(b"c", b"", RangeOptions::default()).expect("range");
    assert_eq!(c.kvs[0].mod_revision, 4, "one revision for all of it");

    // Once committed, the same nested compare holds.
    let again = TxnRequest {
        success: vec![RequestOp::Txn(TxnRequest {
            compare: inner.compare.clone(),
            success: vec![put("d", "inner-success")],
            failure: vec![put("d", "inner-failure")],
        })],
        ..Default::default()
    };
    let response = ks.txn(&again).expect("txn");
    assert_eq!(response.revision, 5);
    assert_eq!(value_of(&ks, "d").as_deref(), Some("inner-success"));
}

#[test]
fn etcds_limits_are_enforced_before_anything_runs() {
    let mut ks = seeded();
    let many = TxnRequest {
        success: (0..=MAX_TXN_OPS)
            .map(|i| put(&format!("k{i}"), "v"))
            .collect(),
        ..Default::default()
    };
    let err = ks.txn(&many).unwrap_err();
    assert_eq!(
        err.to_string(),
        "etcdserver: too many operations in txn request"
    );

    let twice = TxnRequest {
        success: vec![put("k", "1"), put("k", "2")],
        ..Default::default()
    };
    assert_eq!(
        ks.txn(&twice).unwrap_err().to_string(),
        "etcdserver: duplicate key given in txn request"
    );
    let overlapping = TxnRequest {
        success: vec![
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: "j".into(),
                range_end: "l".into(),
                prev_kv: false,
            }),
            put("k", "1"),
        ],
        ..Default::default()
    };
    assert_eq!(
        ks.txn(&overlapping).unwrap_err(),
        RequestError::DuplicateKey
    );
    let nested = TxnRequest {
        success: vec![
            put("k", "1"),
            RequestOp::Txn(TxnRequest {
                failure: vec![put("k", "2")],
                ..Default::default()
            }),
        ],
        ..Default::default()
    };
    assert_eq!(ks.txn(&nested).unwrap_err(), RequestError::DuplicateKey);
    // The same key in the two branches is fine: only one runs.
    let branches = TxnRequest {
        success: vec![put("k", "1")],
        failure: vec![put("k", "2")],
        ..Default::default()
    };
    assert!(ks.txn(&branches).is_ok());
    assert_eq!(ks.revision(), 4);
}

#[test]
fn a_failing_read_undoes_the_txns_writes() {
    let mut ks = seeded();
    let request = TxnRequest {
        success: vec![
            put("written", "1"),
            RequestOp::Range(RangeRequest {
                key: "a".into(),
                range_end: vec![],
                options: RangeOptions {
                    revision: 99,
                    ..Default::default()
                },
            }),
        ],
        ..Default::default()
    };
    assert_eq!(
        ks.txn(&request).unwrap_err(),
        RequestError::Mvcc(MvccError::FutureRevision)
    );
    assert_eq!(value_of(&ks, "written"), None);
    assert_eq!(ks.revision(), 3);
    assert_eq!(ks, seeded(), "exactly as before");
}

#[test]
fn missing_keys_compare_as_zeroes_on_every_target_and_result() {
    use CompareResult::*;
    use CompareTarget::*;
    let ks = seeded();
    let cases = [
        (Version(0), Equal, true),
        (Version(0), NotEqual, false),
        (Version(1), Less, true),
        (Version(-1), Greater, true),
        (CreateRevision(0), Equal, true),
        (CreateRevision(1), Less, true),
        (ModRevision(0), Equal, true),
        (ModRevision(0), Greater, false),
        (Lease(0), Equal, true),
        (Lease(7), NotEqual, true),
        (Value(vec![]), Equal, false),
        (Value(vec![]), Greater, false),
        (Value(b"z".to_vec()), Less, false),
    ];
    for (target, result, expected) in cases {
        let mut ks = ks.clone();
        let request = TxnRequest {
            compare: vec![cmp("missing", result, target.clone())],
            ..Default::default()
        };
        assert_eq!(
            ks.txn(&request).expect("txn").succeeded,
            expected,
            "{target:?} {result:?}"
        );
    }
    // A range without live keys compares like one missing key.
    let empty_range = |target: CompareTarget| TxnRequest {
        compare: vec![Compare {
            key: "x".into(),
            range_end: "y".into(),
            result: Equal,
            target,
        }],
        ..Default::default()
    };
    let mut ks = ks;
    assert!(
        ks.txn(&empty_range(CreateRevision(0)))
            .expect("txn")
            .succeeded
    );
    assert!(!ks.txn(&empty_range(Value(vec![]))).expect("txn").succeeded);
}

#[test]
fn every_compare_must_hold_and_failure_runs_otherwise() {
    use CompareResult::*;
    use CompareTarget::*;
    let mut ks = seeded();
    let request = TxnRequest {
        compare: vec![
            cmp("a", Equal, Version(2)),
            cmp("a", Equal, ModRevision(2)), // it is 3
        ],
        success: vec![put("s", "1")],
        failure: vec![put("f", "1"), get("a")],
    };
    let response = ks.txn(&request).expect("txn");
    assert!(!response.succeeded);
    assert_eq!(response.revision, 4);
    assert_eq!(response.responses.len(), 2);
    assert_eq!(value_of(&ks, "f").as_deref(), Some("1"));
    assert_eq!(value_of(&ks, "s"), None);
}

#[test]
fn a_txns_events_share_one_revision_in_op_order() {
    let mut ks = seeded();
    ks.apply(&[Write::Put {
        key: "z".into(),
        value: "1".into(),
        lease: 0,
    }]); // 4
    let request = TxnRequest {
        success: vec![
            put("m", "1"),
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: "z".into(),
                range_end: vec![],
                prev_kv: true,
            }),
            put("b", "1"),
        ],
        ..Default::default()
    };
    let (response, events) = ks.txn_with_events(&request).expect("txn");
    assert_eq!(response.revision, 5);
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.kv.key.clone(), e.kv.mod_revision))
        .collect();
    use uc_store::mvcc::EventKind::{Delete, Put};
    assert_eq!(
        seen,
        [
            (Put, b"m".to_vec(), 5),
            (Delete, b"z".to_vec(), 5),
            (Put, b"b".to_vec(), 5)
        ]
    );
    let ResponseOp::DeleteRange(deleted) = &response.responses[1] else {
        panic!("{response:?}")
    };
    assert_eq!(deleted.deleted, 1);
    assert_eq!(deleted.prev_kvs[0].value, b"1");
    // A watch replaying from 5 sees the same events.
    assert_eq!(ks.events_since(b"\0", b"\0", 5), Ok(events));
}

#[test]
fn put_checks_run_against_the_store_before_the_txn() {
    let mut ks = seeded();
    let before = ks.clone();
    let ignore_value = |key: &str| {
        RequestOp::Put(PutRequest {
            key: key.into(),
            ignore_value: true,
            ..Default::default()
        })
    };
    let request = TxnRequest {
        success: vec![put("new", "1"), ignore_value("missing")],
        ..Default::default()
    };
    assert_eq!(ks.txn(&request).unwrap_err(), RequestError::KeyNotFound);
    assert_eq!(ks, before, "the put before the failing one is undone");

    let keeps = TxnRequest {
        success: vec![put("new", "1"), ignore_value("a")],
        ..Default::default()
    };
    ks.txn(&keeps).expect("txn");
    let a = ks.range(b"a", b"", RangeOptions::default()).expect("range");
    assert_eq!(
        (a.kvs[0].value.as_slice(), a.kvs[0].version),
        (&b"2"[..], 3)
    );

    // Value/lease given with the ignore flags is refused in either branch,
    // even the one that does not run.
    let unused_branch = TxnRequest {
        success: vec![put("x", "1")],
        failure: vec![RequestOp::Put(PutRequest {
            key: "a".into(),
            value: "v".into(),
            ignore_value: true,
            ..Default::default()
        })],
        ..Default::default()
    };
    assert_eq!(
        ks.txn(&unused_branch).unwrap_err().to_string(),
        "etcdserver: value is provided"
    );
    let nested_lease = TxnRequest {
        success: vec![RequestOp::Txn(TxnRequest {
            success: vec![RequestOp::Put(PutRequest {
                key: "a".into(),
                lease: 3,
                ignore_lease: true,
                ..Default::default()
            })],
            ..Default::default()
        })],
        ..Default::default()
    };
    assert_eq!(
        ks.txn(&nested_lease).unwrap_err(),
        RequestError::LeaseProvided
    );
}

#[test]
fn txn_limits_at_the_edges() {
    let mut ks = seeded();
    let exactly = TxnRequest {
        success: (0..MAX_TXN_OPS)
            .map(|i| put(&format!("k{i:03}"), "v"))
            .collect(),
        ..Default::default()
    };
    let response = ks.txn(&exactly).expect("128 ops are fine");
    assert_eq!(response.revision, 4, "128 puts, one revision");
    let all = ks
        .range(b"k", b"l", RangeOptions::default())
        .expect("range");
    assert_eq!(all.count, MAX_TXN_OPS);

    let compares = TxnRequest {
        compare: (0..=MAX_TXN_OPS)
            .map(|_| cmp("a", CompareResult::Equal, CompareTarget::Version(2)))
            .collect(),
        ..Default::default()
    };
    assert_eq!(ks.txn(&compares).unwrap_err(), RequestError::TooManyOps);

    let delete = |key: &str, end: &str| {
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: key.into(),
            range_end: end.into(),
            prev_kv: false,
        })
    };
    // Overlapping deletes are fine (etcd only refuses a put meeting a put
    // or a delete).
    let overlapping_deletes = TxnRequest {
        success: vec![delete("k", "l"), delete("k000", "k010")],
        ..Default::default()
    };
    let response = ks.txn(&overlapping_deletes).expect("txn");
    assert_eq!(response.revision, 5);
    let ResponseOp::DeleteRange(second) = &response.responses[1] else {
        panic!("{response:?}")
    };
    assert_eq!(second.deleted, 0, "the first delete took them all");

    let delete_after_put = TxnRequest {
        success: vec![put("k5", "1"), delete("k", "l")],
        ..Default::default()
    };
    assert_eq!(
        ks.txn(&delete_after_put).unwrap_err(),
        RequestError::DuplicateKey
    );
    let nested_delete = TxnRequest {
        success: vec![
            put("k5", "1"),
            RequestOp::Txn(TxnRequest {
                success: vec![delete("k", "\0")],
                ..Default::default()
            }),
        ],
        ..Default::default()
    };
    assert_eq!(
        ks.txn(&nested_delete).unwrap_err(),
        RequestError::DuplicateKey
    );
    assert_eq!(ks.revision(), 5);

    // A nested txn's writes count for the outer ops after it, whichever
    // branch they are in; its two branches may write the same key.
    let nested = |success: Vec<RequestOp>, failure: Vec<RequestOp>| {
        RequestOp::Txn(TxnRequest {
            success,
            failure,
            ..Default::default()
        })
    };
    let after_nested_put = TxnRequest {
        success: vec![nested(vec![], vec![put("n", "1")]), put("n", "2")],
        ..Default::default()
    };
    assert_eq!(
        ks.txn(&after_nested_put).unwrap_err(),
        RequestError::DuplicateKey
    );
    let after_nested_delete = TxnRequest {
        success: vec![nested(vec![delete("m", "o")], vec![]), put("n", "2")],
        ..Default::default()
    };
    assert_eq!(
        ks.txn(&after_nested_delete).unwrap_err(),
        RequestError::DuplicateKey
    );
    let both_branches = TxnRequest {
        success: vec![
            nested(vec![put("n", "then")], vec![put("n", "else")]),
            put("other", "1"),
        ],
        ..Default::default()
    };
    let response = ks.txn(&both_branches).expect("txn");
    assert_eq!(response.revision, 6);
    assert_eq!(value_of(&ks, "n").as_deref(), Some("then"));
}
