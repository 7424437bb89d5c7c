//! Watch support: etcd's filters over the events of each write, and replay
//! from a start revision.

use uc_store::mvcc::{
    DeleteRangeRequest, Event, EventKind, Keyspace, MvccError, PutRequest, WatchFilter,
};

fn put(ks: &mut Keyspace, key: &str, value: &str) -> Vec<Event> {
    ks.put(&PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    })
    .expect("put")
    .1
}

fn summary(events: &[Event]) -> Vec<(EventKind, String, i64, bool)> {
    events
        .iter()
        .map(|e| {
            (
                e.kind,
                String::from_utf8_lossy(&e.kv.key).into_owned(),
                e.kv.mod_revision,
                e.prev_kv.is_some(),
            )
        })
        .collect()
}

fn prefix(p: &str) -> WatchFilter {
    let mut end = p.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    WatchFilter {
        key: p.into(),
        range_end: end,
        ..Default::default()
    }
}

#[test]
fn filters_select_by_range_kind_and_prev_kv() {
    let mut ks = Keyspace::new();
    put(&mut ks, "w/a", "1"); // 2
    let events = put(&mut ks, "w/a", "2"); // 3
    let other = put(&mut ks, "x", "1"); // 4
    let (_, deletes) = ks
        .delete_range(&DeleteRangeRequest {
            key: b"\0".to_vec(),
            range_end: b"\0".to_vec(),
            prev_kv: false,
        })
        .expect("delete"); // 5
    let all: Vec<Event> = events.into_iter().chain(other).chain(deletes).collect();

    assert_eq!(
        summary(&prefix("w/").select(&all)),
        [
            (EventKind::Put, "w/a".into(), 3, false),
            (EventKind::Delete, "w/a".into(), 5, false),
        ]
    );
    let with_prev = WatchFilter {
        prev_kv: true,
        ..prefix("w/")
    };
    let selected = with_prev.select(&all);
    assert_eq!(
        selected[0].prev_kv.as_ref().map(|kv| kv.value.clone()),
        Some(b"1".to_vec())
    );
    assert_eq!(
        selected[1].prev_kv.as_ref().map(|kv| kv.value.clone()),
        Some(b"2".to_vec())
    );
    let no_put = WatchFilter {
        no_put: true,
        ..prefix("w/")
    };
    assert_eq!(
        summary(&no_put.select(&all)),
        [(EventKind::Delete, "w/a".into(), 5, false)]
    );
    let no_delete = WatchFilter {
        no_delete: true,
        key: b"x".to_vec(),
        ..Default::default()
    };
    assert_eq!(
        summary(&no_delete.select(&all)),
        [(EventKind::Put, "x".into(), 4, false)]
    );
    let everything = WatchFilter {
        key: b"\0".to_vec(),
        range_end: b"\0".to_vec(),
        ..Default::default()
    };
    assert_eq!(everything.select(&all).len(), 4);
}

#[test]
fn replay_then_live_events_give_the_whole_history_once() {
    let mut ks = Keyspace::new();
    put(&mut ks, "w/a", "1"); // 2
    put(&mut ks, "w/b", "1"); // 3
    put(&mut ks, "x", "1"); // 4
    let filter = WatchFilter {
        prev_kv: true,
        ..prefix("w/")
    };
    let mut seen = ks.replay(&filter, 3).expect("replay");
    assert_eq!(summary(&seen), [(EventKind::Put, "w/b".into(), 3, false)]);
    // Live events after the replay, as the watch layer would fan them out.
    seen.extend(filter.select(&put(&mut ks, "w/a", "2"))); // 5
    seen.extend(filter.select(&put(&mut ks, "y", "1"))); // 6
    assert_eq!(
        summary(&seen),
        [
            (EventKind::Put, "w/b".into(), 3, false),
            (EventKind::Put, "w/a".into(), 5, true),
        ]
    );
    // Replaying the same span later gives the same events.
    assert_eq!(ks.replay(&filter, 3), Ok(seen));
    assert_eq!(ks.replay(&filter, 0), Ok(vec![]), "0 watches from now on");
    assert_eq!(ks.replay(&filter, 99), Ok(vec![]), "a future start waits");

    ks.compact(5).expect("compact");
    assert_eq!(ks.replay(&filter, 4), Err(MvccError::Compacted));
    // The previous value lies below the compacted revision: etcd cannot
    // send it either (it reads it at mod_revision - 1).
    assert_eq!(
        summary(&ks.replay(&filter, 5).expect("replay")),
        [(EventKind::Put, "w/a".into(), 5, false)]
    );
}
