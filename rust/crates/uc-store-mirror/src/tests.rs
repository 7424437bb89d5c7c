//! The loop against a real etcd: initial read, watch, settle, reconnect to
//! a store that came back empty.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use uc_testkit::{Etcd, TestDir};

use super::*;

const WATCHED: &str = "/uc/v1/mirror-test/";

/// Keeps the keys under `WATCHED` and the manifest; publishes them with the
/// revision and counts publishes.
struct Recorder {
    published: watch::Sender<(BTreeMap<String, String>, i64, u32)>,
    observed_connected: watch::Sender<bool>,
}

impl Mirror for Recorder {
    type State = BTreeMap<String, String>;
    const WHILE_UNREACHABLE: &'static str = "keeping the last keys";

    fn reads(&self) -> Vec<Read> {
        vec![
            Read::Prefix(WATCHED.to_owned()),
            Read::Key(keys::manifest_current()),
        ]
    }

    fn apply(state: &mut Self::State, key: &str, value: Option<&[u8]>, _: i64) -> bool {
        if !key.starts_with(WATCHED) && key != keys::manifest_current() {
            return false;
        }
        match value {
            Some(value) => state.insert(key.to_owned(), String::from_utf8_lossy(value).into()),
            None => state.remove(key),
        };
        true
    }

    fn publish(&mut self, state: &Self::State, revision: i64) {
        self.published.send_modify(|(keys, at, count)| {
            (*keys, *at, *count) = (state.clone(), revision, *count + 1)
        });
    }

    fn observe(&mut self, status: &MirrorStatus) {
        self.observed_connected.send_replace(status.is_connected());
    }
}

type Published = watch::Receiver<(BTreeMap<String, String>, i64, u32)>;

async fn until_published(
    published: &mut Published,
    what: &str,
    f: impl Fn(&BTreeMap<String, String>) -> bool,
) {
    let seen = tokio::time::timeout(
        Duration::from_secs(20),
        published.wait_for(|(keys, _, _)| f(keys)),
    )
    .await
    .is_ok_and(|changed| changed.is_ok());
    assert!(
        seen,
        "not published: {what}; last: {:?}",
        published.borrow().0
    );
}

fn key(name: &str) -> String {
    format!("{WATCHED}{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_the_store_and_starts_over_when_it_comes_back_empty() {
    let dir = TestDir::new("mirror");
    let etcd = Etcd::start(&dir.join("store"));
    let mut client = etcd.client().await;
    client.put(key("a"), "1", None).await.unwrap();
    client
        .put(keys::manifest_current(), "m", None)
        .await
        .unwrap();
    let (published_tx, mut published) = watch::channel((BTreeMap::new(), 0, 0));
    let (connected_tx, mut connected) = watch::channel(false);
    let status = Arc::new(MirrorStatus::default());
    let recorder = Recorder {
        published: published_tx,
        observed_connected: connected_tx,
    };
    let task = tokio::spawn(run(vec![etcd.endpoint.clone()], recorder, status.clone()));

    // The initial read: both reads, at the store's revision.
    until_published(&mut published, "initial read", |keys| keys.len() == 2).await;
    let revision = client
        .get("x", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    assert_eq!(published.borrow().1, revision);
    tokio::time::timeout(Duration::from_secs(5), connected.wait_for(|up| *up))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.health(true), Health::Ok);

    // Watched changes arrive; others do not publish.
    let count = published.borrow().2;
    client.put("/uc/v1/elsewhere", "x", None).await.unwrap();
    tokio::time::sleep(SETTLE * 10).await;
    assert_eq!(published.borrow().2, count, "an unrelated key published");
    client.put(key("b"), "2", None).await.unwrap();
    client.delete(key("a"), None).await.unwrap();
    until_published(&mut published, "b put, a deleted", |keys| {
        keys.get(&key("b")).map(String::as_str) == Some("2") && !keys.contains_key(&key("a"))
    })
    .await;

    // The probe sees the store's revision: nothing left to apply.
    tokio::time::timeout(Duration::from_secs(5), async {
        while status.store_revision() < revision + 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a probe within 5 s");
    assert_eq!(status.lag(), 0);

    // The store goes: the last state stays published, the status says why.
    let endpoint = etcd.endpoint.clone();
    drop(etcd);
    tokio::time::timeout(Duration::from_secs(10), connected.wait_for(|up| !*up))
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.last_error().is_some_and(|e| e.contains("store")),
        "{:?}",
        status.last_error()
    );
    assert_eq!(status.health(true), Health::Degraded);
    assert!(published.borrow().0.contains_key(&key("b")));

    // It comes back empty with one new key: the old keys are gone.
    let etcd = Etcd::start_at(&dir.join("store-again"), &endpoint);
    let mut client = etcd.client().await;
    client.put(key("c"), "3", None).await.unwrap();
    until_published(&mut published, "the new store's keys only", |keys| {
        keys.keys().eq([&key("c")])
    })
    .await;
    tokio::time::timeout(Duration::from_secs(10), connected.wait_for(|up| *up))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.last_error(), None);
    task.abort();
}
