//! etcd's Range options: limit/more/count, sorting, filters, keys_only and
//! historical reads.

use uc_store::mvcc::{
    KeyValue, Keyspace, MvccError, PutRequest, RangeOptions, SortOrder, SortTarget,
};

fn put(ks: &mut Keyspace, key: &str, value: &str) -> i64 {
    let (response, _) = ks
        .put(&PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })
        .expect("put");
    response.revision
}

/// Keys whose create revision, version, mod revision and value all order
/// differently:
///
/// | key | create | mod | version | value |
/// |-----|--------|-----|---------|-------|
/// | a   | 4      | 4   | 1       | "m"   |
/// | b   | 2      | 6   | 3       | "z"   |
/// | c   | 3      | 7   | 2       | "a"   |
fn store() -> Keyspace {
    let mut ks = Keyspace::new();
    put(&mut ks, "b", "1"); // 2
    put(&mut ks, "c", "1"); // 3
    put(&mut ks, "a", "m"); // 4
    put(&mut ks, "b", "2"); // 5
    put(&mut ks, "b", "z"); // 6
    put(&mut ks, "c", "a"); // 7
    put(&mut ks, "zz-outside", "x"); // 8
    ks
}

fn keys_of(kvs: &[KeyValue]) -> String {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

fn range(ks: &Keyspace, options: RangeOptions) -> (String, usize, bool) {
    let r = ks.range(b"a", b"d", options).expect("range");
    (keys_of(&r.kvs), r.count, r.more)
}

#[test]
fn the_store_under_test_is_as_documented() {
    let ks = store();
    let r = ks
        .range(b"a", b"d", RangeOptions::default())
        .expect("range");
    let rows: Vec<_> = r
        .kvs
        .iter()
        .map(|kv| {
            (
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                kv.value.clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (4, 4, 1, b"m".to_vec()),
            (2, 6, 3, b"z".to_vec()),
            (3, 7, 2, b"a".to_vec())
        ]
    );
    assert_eq!(r.revision, 8);
}

#[test]
fn every_sort_target_and_order() {
    let ks = store();
    let cases = [
        (SortTarget::Key, SortOrder::None, "a,b,c"),
        (SortTarget::Key, SortOrder::Ascend, "a,b,c"),
        (SortTarget::Key, SortOrder::Descend, "c,b,a"),
        // etcd sorts ascending when a target other than the key has no order.
        (SortTarget::Version, SortOrder::None, "a,c,b"),
        (SortTarget::Version, SortOrder::Ascend, "a,c,b"),
        (SortTarget::Version, SortOrder::Descend, "b,c,a"),
        (SortTarget::Create, SortOrder::None, "b,c,a"),
        (SortTarget::Create, SortOrder::Ascend, "b,c,a"),
        (SortTarget::Create, SortOrder::Descend, "a,c,b"),
        (SortTarget::Mod, SortOrder::None, "a,b,c"),
        (SortTarget::Mod, SortOrder::Ascend, "a,b,c"),
        (SortTarget::Mod, SortOrder::Descend, "c,b,a"),
        (SortTarget::Value, SortOrder::None, "c,a,b"),
        (SortTarget::Value, SortOrder::Ascend, "c,a,b"),
        (SortTarget::Value, SortOrder::Descend, "b,a,c"),
    ];
    for (sort_target, sort_order, expected) in cases {
        let options = RangeOptions {
            sort_target,
            sort_order,
            ..Default::default()
        };
        assert_eq!(
            range(&ks, options).0,
            expected,
            "{sort_target:?} {sort_order:?}"
        );
    }
}

#[test]
fn equal_sort_values_keep_key_order() {
    let mut ks = Keyspace::new();
    for key in ["c", "a", "b"] {
        put(&mut ks, key, "same");
    }
    for sort_order in [SortOrder::Ascend, SortOrder::Descend] {
        let options = RangeOptions {
            sort_target: SortTarget::Value,
            sort_order,
            ..Default::default()
        };
        assert_eq!(range(&ks, options).0, "a,b,c", "{sort_order:?}");
    }
}

#[test]
fn limit_applies_after_sorting() {
    let ks = store();
    let options = RangeOptions {
        sort_target: SortTarget::Mod,
        sort_order: SortOrder::Descend,
        limit: 2,
        ..Default::default()
    };
    assert_eq!(range(&ks, options), ("c,b".into(), 3, true));
    let exact = RangeOptions {
        limit: 3,
        ..Default::default()
    };
    assert_eq!(range(&ks, exact), ("a,b,c".into(), 3, false));
    let over = RangeOptions {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(range(&ks, over), ("a,b,c".into(), 3, false));
}

#[test]
fn revision_filters_prune_kvs_but_not_count() {
    let ks = store();
    let cases = [
        (
            RangeOptions {
                min_mod_revision: 6,
                ..Default::default()
            },
            "b,c",
        ),
        (
            RangeOptions {
                max_mod_revision: 6,
                ..Default::default()
            },
            "a,b",
        ),
        (
            RangeOptions {
                min_create_revision: 3,
                ..Default::default()
            },
            "a,c",
        ),
        (
            RangeOptions {
                max_create_revision: 3,
                ..Default::default()
            },
            "b,c",
        ),
        (
            RangeOptions {
                min_mod_revision: 5,
                max_mod_revision: 6,
                min_create_revision: 2,
                max_create_revision: 2,
                ..Default::default()
            },
            "b",
        ),
    ];
    for (options, expected) in cases {
        assert_eq!(
            range(&ks, options),
            (expected.into(), 3, false),
            "{options:?}"
        );
    }
    // `more` counts what the filters kept.
    let filtered = RangeOptions {
        min_mod_revision: 6,
        limit: 1,
        ..Default::default()
    };
    assert_eq!(range(&ks, filtered), ("b".into(), 3, true));
}

#[test]
fn keys_only_and_count_only() {
    let ks = store();
    let r = ks
        .range(
            b"a",
            b"d",
            RangeOptions {
                keys_only: true,
                ..Default::default()
            },
        )
        .expect("range");
    assert_eq!(keys_of(&r.kvs), "a,b,c");
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(r.kvs[1].version, 3, "keys_only keeps the metadata");
    let counted = RangeOptions {
        count_only: true,
        limit: 1,
        ..Default::default()
    };
    assert_eq!(range(&ks, counted), (String::new(), 3, false));
}

#[test]
fn single_key_prefix_from_key_and_all_keys() {
    let ks = store();
    let get = |key: &[u8], end: &[u8]| {
        keys_of(
            &ks.range(key, end, RangeOptions::default())
                .expect("range")
                .kvs,
        )
    };
    assert_eq!(get(b"b", b""), "b");
    assert_eq!(get(b"nope", b""), "");
    assert_eq!(get(b"z", b"{"), "zz-outside", "prefix z");
    assert_eq!(get(b"b", b"\0"), "b,c,zz-outside", "every key from b");
    assert_eq!(get(b"\0", b"\0"), "a,b,c,zz-outside", "all keys");
    assert_eq!(get(b"c", b"c"), "", "an empty range");
}

#[test]
fn historical_reads_see_the_store_as_of_their_revision() {
    let ks = store();
    let at = |revision: i64| {
        let r = ks
            .range(
                b"\0",
                b"\0",
                RangeOptions {
                    revision,
                    ..Default::default()
                },
            )
            .expect("range");
        assert_eq!(r.revision, 8, "the header carries the current revision");
        r.kvs
            .iter()
            .map(|kv| {
                format!(
                    "{}={}@{}",
                    String::from_utf8_lossy(&kv.key),
                    String::from_utf8_lossy(&kv.value),
                    kv.version
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(at(1), "");
    assert_eq!(at(2), "b=1@1");
    assert_eq!(at(5), "a=m@1,b=2@2,c=1@1");
    assert_eq!(at(7), "a=m@1,b=z@3,c=a@2");
    assert_eq!(at(0), at(8), "0 is the current revision");
    let future = ks.range(
        b"a",
        b"",
        RangeOptions {
            revision: 9,
            ..Default::default()
        },
    );
    assert_eq!(future, Err(MvccError::FutureRevision));
}

#[test]
fn reads_at_and_after_the_compacted_revision_survive_compaction() {
    let mut ks = store();
    ks.compact(5).expect("compact");
    let at = |ks: &Keyspace, revision: i64| {
        ks.range(
            b"\0",
            b"\0",
            RangeOptions {
                revision,
                ..Default::default()
            },
        )
        .map(|r| keys_of(&r.kvs))
    };
    assert_eq!(at(&ks, 5), Ok("a,b,c".into()));
    assert_eq!(at(&ks, 6), Ok("a,b,c".into()));
    assert_eq!(at(&ks, 4), Err(MvccError::Compacted));
    assert_eq!(
        at(&ks, 4).unwrap_err().to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let b_at_5 = ks
        .range(
            b"b",
            b"",
            RangeOptions {
                revision: 5,
                ..Default::default()
            },
        )
        .expect("range");
    assert_eq!(b_at_5.kvs[0].value, b"2");
    assert_eq!(b_at_5.kvs[0].version, 2);
}
