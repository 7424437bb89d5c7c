//! etcd's Put and DeleteRange requests: revisions, versions, prev_kv,
//! ignore_value/ignore_lease and their errors, and the events they produce.

use uc_store::mvcc::{
    DeleteRangeRequest, EventKind, KeyValue, Keyspace, PutRequest, RangeOptions, RequestError,
};

fn put_request(key: &str, value: &str, lease: i64) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        lease,
        ..Default::default()
    }
}

fn current(ks: &Keyspace, key: &str) -> Option<KeyValue> {
    ks.range(key.as_bytes(), b"", RangeOptions::default())
        .expect("range")
        .kvs
        .into_iter()
        .next()
}

#[test]
fn an_empty_store_is_at_revision_one() {
    let ks = Keyspace::new();
    assert_eq!(ks.revision(), 1);
    assert_eq!(ks.compacted_revision(), 0);
    let all = ks
        .range(b"\0", b"\0", RangeOptions::default())
        .expect("range");
    assert_eq!((all.count, all.revision), (0, 1));
}

#[test]
fn put_delete_put_starts_a_new_generation() {
    let mut ks = Keyspace::new();
    let (first, events) = ks.put(&put_request("k", "v1", 0)).expect("put");
    assert_eq!(first.revision, 2);
    assert_eq!(first.prev_kv, None);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Put);
    assert_eq!(
        events[0].kv,
        KeyValue {
            key: b"k".to_vec(),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
            value: b"v1".to_vec(),
            lease: 0,
        }
    );
    ks.put(&put_request("k", "v2", 0)).expect("put"); // 3
    let kv = current(&ks, "k").expect("k");
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));

    let (deleted, events) = ks
        .delete_range(&DeleteRangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .expect("delete");
    assert_eq!((deleted.deleted, deleted.revision), (1, 4));
    assert!(deleted.prev_kvs.is_empty(), "prev_kv was not asked for");
    assert_eq!(events[0].kind, EventKind::Delete);
    assert_eq!(events[0].kv.mod_revision, 4);
    assert_eq!(events[0].prev_kv.as_ref().map(|kv| kv.version), Some(2));

    ks.put(&put_request("k", "v3", 0)).expect("put"); // 5
    let kv = current(&ks, "k").expect("k");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (5, 5, 1),
        "a put after a delete is a new generation"
    );
}

#[test]
fn deleting_nothing_does_not_bump_the_revision() {
    let mut ks = Keyspace::new();
    ks.put(&put_request("a", "1", 0)).expect("put"); // 2
    let (response, events) = ks
        .delete_range(&DeleteRangeRequest {
            key: b"x".to_vec(),
            range_end: b"z".to_vec(),
            prev_kv: true,
        })
        .expect("delete");
    assert_eq!((response.deleted, response.revision), (0, 2));
    assert!(events.is_empty());
    assert_eq!(ks.revision(), 2);
}

#[test]
fn delete_range_with_prev_kv_returns_every_deleted_value() {
    let mut ks = Keyspace::new();
    for key in ["p/1", "p/2", "p/3", "q"] {
        ks.put(&put_request(key, key, 0)).expect("put");
    }
    let (response, events) = ks
        .delete_range(&DeleteRangeRequest {
            key: b"p/".to_vec(),
            range_end: b"p0".to_vec(),
            prev_kv: true,
        })
        .expect("delete");
    assert_eq!(response.deleted, 3);
    assert_eq!(response.revision, 6, "three deletes, one revision");
    let values: Vec<_> = response
        .prev_kvs
        .iter()
        .map(|kv| kv.value.clone())
        .collect();
    assert_eq!(values, [b"p/1".to_vec(), b"p/2".to_vec(), b"p/3".to_vec()]);
    assert!(events.iter().all(|e| e.kv.mod_revision == 6));
    assert_eq!(current(&ks, "q").map(|kv| kv.value), Some(b"q".to_vec()));
}

#[test]
fn put_with_prev_kv_returns_the_previous_value() {
    let mut ks = Keyspace::new();
    let asking = PutRequest {
        prev_kv: true,
        ..put_request("k", "1", 0)
    };
    assert_eq!(ks.put(&asking).expect("put").0.prev_kv, None);
    let again = PutRequest {
        prev_kv: true,
        ..put_request("k", "2", 0)
    };
    let prev = ks.put(&again).expect("put").0.prev_kv.expect("prev_kv");
    assert_eq!(
        (prev.value, prev.version, prev.mod_revision),
        (b"1".to_vec(), 1, 2)
    );
    let not_asking = put_request("k", "3", 0);
    assert_eq!(ks.put(&not_asking).expect("put").0.prev_kv, None);
}

#[test]
fn ignore_value_and_ignore_lease_keep_what_the_key_has() {
    let mut ks = Keyspace::new();
    ks.put(&put_request("k", "value", 7)).expect("put"); // 2

    let (response, events) = ks
        .put(&PutRequest {
            key: b"k".to_vec(),
            lease: 9,
            ignore_value: true,
            ..Default::default()
        })
        .expect("put");
    assert_eq!(response.revision, 3);
    let kv = current(&ks, "k").expect("k");
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"value"[..], 9, 2)
    );
    assert_eq!(events[0].kv, kv);

    ks.put(&PutRequest {
        key: b"k".to_vec(),
        value: b"new".to_vec(),
        ignore_lease: true,
        ..Default::default()
    })
    .expect("put");
    let kv = current(&ks, "k").expect("k");
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"new"[..], 9, 3)
    );

    ks.put(&PutRequest {
        key: b"k".to_vec(),
        ignore_value: true,
        ignore_lease: true,
        ..Default::default()
    })
    .expect("put");
    let kv = current(&ks, "k").expect("k");
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version, kv.mod_revision),
        (&b"new"[..], 9, 4, 5),
        "a put keeping both still bumps version and revision"
    );
}

#[test]
fn ignore_flags_refuse_what_etcd_refuses_and_write_nothing() {
    let mut ks = Keyspace::new();
    ks.put(&put_request("k", "v", 0)).expect("put"); // 2
    let before = ks.clone();
    let cases = [
        (
            PutRequest {
                ignore_value: true,
                ..put_request("k", "x", 0)
            },
            "etcdserver: value is provided",
        ),
        (
            PutRequest {
                ignore_lease: true,
                ..put_request("k", "", 5)
            },
            "etcdserver: lease is provided",
        ),
        (
            PutRequest {
                ignore_value: true,
                ..put_request("missing", "", 0)
            },
            "etcdserver: key not found",
        ),
        (
            PutRequest {
                ignore_lease: true,
                ..put_request("missing", "v", 0)
            },
            "etcdserver: key not found",
        ),
        (put_request("", "v", 0), "etcdserver: key is not provided"),
    ];
    for (request, text) in cases {
        let err = ks.put(&request).unwrap_err();
        assert_eq!(err.to_string(), text, "{request:?}");
    }
    assert_eq!(
        ks.delete_range(&DeleteRangeRequest::default()).unwrap_err(),
        RequestError::EmptyKey
    );
    assert_eq!(ks, before, "nothing was written");

    // A deleted key is missing too.
    ks.delete_range(&DeleteRangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    })
    .expect("delete");
    let err = ks
        .put(&PutRequest {
            ignore_value: true,
            ..put_request("k", "", 0)
        })
        .unwrap_err();
    assert_eq!(err, RequestError::KeyNotFound);
}
