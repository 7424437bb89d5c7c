//! Leader election against a real etcd: a second candidate waits while the
//! first leads; a deposed leader's guarded writes fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use etcd_client::TxnOp;
use uc_scheduler::leader::{campaign, LeaderError};
use uc_testkit::{Etcd, TestDir};
use uc_types::keys;

/// A guarded write: web's assignment `id` set to `value`.
fn assign(id: &str, value: &str) -> Vec<TxnOp> {
    vec![TxnOp::put(keys::service_assignment("web", id), value, None)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_write() {
    let dir = TestDir::new("uc-scheduler-deposed");
    let etcd = Etcd::start(&dir.join("etcd"));
    let mut client = etcd.client().await;
    let ttl = Duration::from_secs(30);
    let first = campaign(&mut client, "first", ttl).await.unwrap();
    first.txn(&mut client, assign("0", "a")).await.unwrap();

    // A second candidate waits as long as the first holds its lease.
    let mut other = client.clone();
    let second = tokio::spawn(async move { campaign(&mut other, "second", ttl).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "two leaders at once");

    // The first leader's lease is revoked (as if it expired while the
    // leader was stalled); the second takes over.
    client.lease_revoke(first.lease).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("second elected in time")
        .unwrap()
        .unwrap();
    assert_ne!(second.create_revision, first.create_revision);

    // The stale leader still thinks it leads: its write is refused.
    let stale = first.txn(&mut client, assign("1", "b")).await;
    assert!(matches!(stale, Err(LeaderError::Lost(_))), "{stale:?}");
    assert_eq!(etcd.get(&keys::service_assignment("web", "1")), None);
    second.txn(&mut client, assign("1", "c")).await.unwrap();
    assert_eq!(
        etcd.get(&keys::service_assignment("web", "1")).as_deref(),
        Some("c")
    );
}
