#![allow(clippy::unwrap_used)]
use super::*;
use openraft::CommittedLeaderId;

#[test]
fn slow_commits_are_warned_about_at_most_every_ten_seconds() {
    let mut slow = SlowCommits::default();
    let start = Instant::now();
    let ms = Duration::from_millis;
    assert_eq!(
        slow.note(ms(5), start),
        None,
        "fast commits are not counted"
    );
    assert_eq!(slow.note(ms(150), start), Some((1, ms(150))));
    assert_eq!(slow.note(ms(400), start + ms(1000)), None);
    assert_eq!(slow.note(ms(120), start + ms(5000)), None);
    assert_eq!(slow.note(ms(1), start + ms(11000)), None);
    assert_eq!(
        slow.note(ms(110), start + ms(11000)),
        Some((3, ms(400))),
        "the next warning counts the slow commits in between"
    );
}

/// The commit index is not written on its own (see `writer`) but is by
/// `sync` and when the store closes, so a clean restart applies up to it.
#[tokio::test]
async fn commit_index_survives_a_clean_shutdown() {
    let dir = uc_testkit::TestDir::new("log-store-commit-index");
    let path = dir.join("raft-log.redb");
    let mut store = LogStore::open(&path, true).unwrap();
    let committed = LogId::new(CommittedLeaderId::new(1, 1), 5);
    store.save_committed(Some(committed)).await.unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(committed));
    let later = LogId::new(CommittedLeaderId::new(1, 1), 7);
    store.save_committed(Some(later)).await.unwrap();
    store.sync().await.unwrap();
    let on_disk: Option<Option<LogId<NodeId>>> = store.meta(COMMITTED).unwrap();
    assert_eq!(on_disk, Some(Some(later)), "written by sync");
    let last = LogId::new(CommittedLeaderId::new(1, 1), 8);
    store.save_committed(Some(last)).await.unwrap();
    drop(store);
    let mut reopened = reopen(&path).await;
    assert_eq!(reopened.read_committed().await.unwrap(), Some(last));
}

fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    openraft::testing::blank_ent::<TypeConfig>(term, 1, index)
}

/// Opens the log at `path` again once the writer of the dropped store
/// has let go of the file (after writing what it held).
async fn reopen(path: &Path) -> LogStore {
    uc_testkit::wait_for("the log to reopen", Duration::from_secs(5), || {
        LogStore::open(path, true).ok()
    })
}

/// Reads served from memory (recent and unflushed entries) give what
/// the database gives after a restart, through appends, truncates and
/// purges, for ranges that start inside and before what memory holds.
#[tokio::test]
async fn entries_from_memory_match_the_database() {
    let dir = uc_testkit::TestDir::new("log-store-recent");
    let path = dir.join("raft-log.redb");
    let mut store = LogStore::open(&path, true).unwrap();
    let total = RECENT_ENTRIES as u64 * 3;
    for index in 1..=total {
        store.queue_append([entry(1, index)], None).unwrap();
    }
    store.sync().await.unwrap();
    // A conflict: the tail is replaced by entries of a later term, and
    // the head is purged.
    let cut = total - 20;
    store
        .truncate(LogId::new(CommittedLeaderId::new(1, 1), cut))
        .await
        .unwrap();
    store
        .queue_append((cut..cut + 10).map(|i| entry(2, i)), None)
        .unwrap();
    store
        .purge(LogId::new(CommittedLeaderId::new(1, 1), 5))
        .await
        .unwrap();
    // Some of the new term's entries are written, the last not yet.
    store.sync().await.unwrap();
    store.queue_append([entry(2, cut + 10)], None).unwrap();
    let ranges = [
        (0, total + 10),
        (6, 40),
        (cut - RECENT_ENTRIES as u64 - 3, cut + 3),
        (cut - 5, cut + 11),
        (cut + 9, cut + 11),
    ];
    let mut from_memory = Vec::new();
    for (start, end) in ranges {
        from_memory.push(store.try_get_log_entries(start..end).await.unwrap());
    }
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id.unwrap().index, cut + 10);
    store.sync().await.unwrap();
    drop(store);
    let mut reopened = reopen(&path).await;
    assert_eq!(
        reopened.get_log_state().await.unwrap().last_log_id,
        state.last_log_id
    );
    for ((start, end), memory) in ranges.into_iter().zip(from_memory) {
        let disk = reopened.try_get_log_entries(start..end).await.unwrap();
        let ids = |entries: &[Entry<TypeConfig>]| -> Vec<LogId<NodeId>> {
            entries.iter().map(|e| e.log_id).collect()
        };
        assert_eq!(ids(&memory), ids(&disk), "{start}..{end}");
        assert!(!disk.is_empty(), "{start}..{end}");
    }
    let all = reopened.try_get_log_entries(0..u64::MAX).await.unwrap();
    assert_eq!(all.first().unwrap().log_id.index, 6, "purged up to 5");
    assert_eq!(all.len() as u64, cut + 10 - 5);
    assert!(all
        .iter()
        .all(|e| (e.log_id.leader_id.term == 2) == (e.log_id.index >= cut)));
}
