//! Two scheduler processes against a real etcd: one leads, the other stands
//! by; killing the leader (SIGKILL, so its lease is not handed back) lets
//! the standby take over once the lease runs out, and the history of the
//! assignments never shows a replica twice. SIGTERM hands over at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use serde_json::json;
use uc_testkit::{Etcd, KillOnDrop, TestDir};
use uc_types::{keys, Assignment, LeaderRecord};

fn start(dir: &std::path::Path, holder: &str) -> KillOnDrop {
    let log = std::fs::File::create(dir.join(format!("{holder}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_uc-scheduler"))
        .arg("--config")
        .arg(dir.join("scheduler.json"))
        .args(["run", "--holder", holder, "--leader-ttl-seconds", "2"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

async fn leader(client: &mut Client) -> Option<String> {
    let response = client.get(keys::scheduler_leader(), None).await.unwrap();
    let kv = response.kvs().first()?;
    let record: LeaderRecord = serde_json::from_slice(kv.value()).unwrap();
    Some(record.holder)
}

/// Replays every change ever made below `/uc/v1/services/<service>/` and
/// returns, for each revision, the service's id-to-node assignments.
async fn history(client: &mut Client, service: &str) -> Vec<(i64, BTreeMap<String, String>)> {
    let prefix = format!("{}{service}/", keys::services_prefix());
    let end = format!("{prefix}test-end");
    client.put(end.as_str(), "", None).await.unwrap();
    let assignments = keys::service_assignments_prefix(service);
    let options = WatchOptions::new().with_prefix().with_start_revision(1);
    let mut stream = client.watch(prefix.as_str(), Some(options)).await.unwrap();
    let mut now: BTreeMap<String, String> = BTreeMap::new();
    let mut states = Vec::new();
    let mut revision = 0;
    loop {
        let response = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("history in time")
            .unwrap()
            .expect("watch open");
        for event in response.events() {
            let kv = event.kv().unwrap();
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            if kv.mod_revision() != revision && revision != 0 {
                states.push((revision, now.clone()));
            }
            revision = kv.mod_revision();
            if key == end {
                return states;
            }
            let Some(id) = key.strip_prefix(&assignments) else {
                continue;
            };
            match event.event_type() {
                EventType::Put => {
                    let a: Assignment = serde_json::from_slice(kv.value()).unwrap();
                    now.insert(id.to_owned(), a.node);
                }
                EventType::Delete => {
                    now.remove(id);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_hands_over_without_duplicate_placements() {
    let dir = TestDir::new("uc-scheduler-failover");
    let etcd = Etcd::start(&dir.join("etcd"));
    let mut client = etcd.client().await;
    let nodes = ["w1", "w2", "w3", "w4"];
    let mut leases = BTreeMap::new();
    for node in nodes {
        leases.insert(node, heartbeat(&mut client, node, 60).await);
    }
    import(
        &mut client,
        &manifest(&nodes, &[("web", json!({"replicas": 3}))]),
    )
    .await;
    std::fs::write(
        dir.join("scheduler.json"),
        serde_json::to_string(&config(&etcd.endpoint, 1)).unwrap(),
    )
    .unwrap();
    let mut schedulers = BTreeMap::from([("a", start(&dir, "a")), ("b", start(&dir, "b"))]);

    let first = eventually("a leader", WAIT, || {
        let mut client = client.clone();
        async move { leader(&mut client).await }
    })
    .await;
    let before = placed_when(&client, "web", "three assignments", |p| p.len() == 3).await;
    assert!(spread(&before, 3), "{before:?}");

    // The leader dies without handing over; w2's node-agent dies too, so
    // the new leader has work to do.
    let mut dead = schedulers.remove(first.as_str()).unwrap();
    dead.0.kill().unwrap();
    dead.0.wait().unwrap();
    client.lease_revoke(leases["w2"]).await.unwrap();
    let second = eventually("the standby to lead", WAIT, || {
        let mut client = client.clone();
        let first = first.clone();
        async move { leader(&mut client).await.filter(|h| *h != first) }
    })
    .await;
    let standby = if first == "a" { "b" } else { "a" };
    assert_eq!(second, standby);

    let victim = before.iter().find(|(_, n)| *n == "w2").unwrap().0.clone();
    let after = placed_when(&client, "web", "w2's instance to move to w4", |p| {
        p.get(&victim).map(String::as_str) == Some("w4")
    })
    .await;
    assert!(spread(&after, 3), "{after:?}");
    for (id, node) in &before {
        if *id != victim {
            assert_eq!(after[id], *node, "instance {id} moved");
        }
    }

    // Never more than three replicas, never two on one node, at any revision.
    let states = history(&mut client, "web").await;
    assert!(!states.is_empty());
    for (revision, state) in &states {
        let nodes: std::collections::BTreeSet<&String> = state.values().collect();
        assert!(state.len() <= 3, "revision {revision}: {state:?}");
        assert_eq!(nodes.len(), state.len(), "revision {revision}: {state:?}");
    }

    // `plan` computes the same placement without writing anything.
    let out = Command::new(env!("CARGO_BIN_EXE_uc-scheduler"))
        .arg("--config")
        .arg(dir.join("scheduler.json"))
        .arg("plan")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (id, node) in &after {
        assert_eq!(
            plan["assignments"]["web"][id]["node"],
            json!(node),
            "{plan}"
        );
    }

    // SIGTERM: the leader hands its lease back and exits; the key goes at once.
    let mut last = schedulers.remove(second.as_str()).unwrap();
    let status = last.terminate(Duration::from_secs(30));
    assert!(status.success(), "uc-scheduler exited with {status}");
    let gone = client
        .get(
            keys::scheduler_leader(),
            Some(GetOptions::new().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(gone.count(), 0, "leader key left behind after SIGTERM");
}
