//! etcd's Txn semantics against the keyspace.

use uc_store::mvcc::{
    Compare, CompareResult, CompareTarget, Keyspace, MvccError, RangeOptions, RequestOp,
    ResponseOp, TxnError, TxnRequest, Write, MAX_TXN_OPS,
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
    RequestOp::Put {
        key: key.into(),
        value: value.into(),
        lease: 0,
    }
}

fn get(key: &str) -> RequestOp {
    RequestOp::Range {
        key: key.into(),
        range_end: vec![],
        options: RangeOptions::default(),
    }
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
    let ResponseOp::Put { prev_kv } = &response.responses[0] else {
        panic!("{response:?}")
    };
    assert_eq!(
        prev_kv.as_ref().map(|kv| kv.value.clone()),
        Some(b"2".to_vec())
    );
    let ResponseOp::Range(read) = &response.responses[2] else {
        panic!("{response:?}")
    };
    assert_eq!(read.kvs[0].value, b"3", "the read sees the txn's own put");
    assert_eq!(read.kvs[0].mod_revision, 4);
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
fn nested_txns_run_in_the_same_revision() {
    let mut ks = seeded();
    let inner = TxnRequest {
        compare: vec![cmp(
            "b",
            CompareResult::Equal,
            CompareTarget::Value(b"new".to_vec()),
        )],
        success: vec![put("c", "inner-success")],
        failure: vec![put("c", "inner-failure")],
    };
    let outer = TxnRequest {
        success: vec![put("b", "new"), RequestOp::Txn(inner)],
        ..Default::default()
    };
    let response = ks.txn(&outer).expect("txn");
    assert_eq!(response.revision, 4);
    let ResponseOp::Txn(nested) = &response.responses[1] else {
        panic!("{response:?}")
    };
    assert!(nested.succeeded, "the nested compare sees the outer put");
    assert_eq!(value_of(&ks, "c").as_deref(), Some("inner-success"));
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
            RequestOp::DeleteRange {
                key: "j".into(),
                range_end: "l".into(),
            },
            put("k", "1"),
        ],
        ..Default::default()
    };
    assert_eq!(ks.txn(&overlapping).unwrap_err(), TxnError::DuplicateKey);
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
    assert_eq!(ks.txn(&nested).unwrap_err(), TxnError::DuplicateKey);
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
            RequestOp::Range {
                key: "a".into(),
                range_end: vec![],
                options: RangeOptions {
                    revision: 99,
                    ..Default::default()
                },
            },
        ],
        ..Default::default()
    };
    assert_eq!(
        ks.txn(&request).unwrap_err(),
        TxnError::Mvcc(MvccError::FutureRevision)
    );
    assert_eq!(value_of(&ks, "written"), None);
    assert_eq!(ks.revision(), 3);
    assert_eq!(ks, seeded(), "exactly as before");
}
