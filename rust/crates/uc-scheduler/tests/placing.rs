//! The scheduler daemon against a real etcd: it places a service over
//! heartbeating nodes, moves instances off a node whose heartbeat is gone
//! for longer than the grace period, drains at most maxUnavailable at a
//! time, and reports what it cannot place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use uc_scheduler::daemon::{self, Options};
use uc_testkit::{Etcd, TestDir};
use uc_types::{keys, NodeCordon};

/// A scheduler in this process, stopped (without handing over) when dropped.
struct Scheduler(tokio::task::JoinHandle<Result<(), daemon::Error>>);

impl Scheduler {
    fn start(endpoint: &str, grace_seconds: u64, holder: &str) -> Scheduler {
        let options = Options {
            holder: holder.to_owned(),
            leader_ttl: Duration::from_secs(2),
        };
        let config = config(endpoint, grace_seconds);
        Scheduler(tokio::spawn(daemon::run(
            config,
            options,
            std::future::pending(),
        )))
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_three_replicas_on_three_heartbeating_nodes() {
    let dir = TestDir::new("uc-scheduler-places");
    let etcd = Etcd::start(&dir.join("etcd"));
    let mut client = etcd.client().await;
    for node in ["w1", "w2", "w3"] {
        heartbeat(&mut client, node, 60).await;
    }
    import(
        &mut client,
        &manifest(&["w1", "w2", "w3"], &[("web", json!({"replicas": 3}))]),
    )
    .await;
    let _scheduler = Scheduler::start(&etcd.endpoint, 60, "s1");

    let placement = placed_when(&client, "web", "three assignments", |p| p.len() == 3).await;
    assert_eq!(
        placement.into_iter().collect::<Vec<_>>(),
        [("0", "w1"), ("1", "w2"), ("2", "w3")].map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let value = etcd.get(&keys::service_assignment("web", "0")).unwrap();
    assert_eq!(value, r#"{"node":"w1","ports":{"http":8080}}"#);
    let leader = etcd.get(&keys::scheduler_leader()).unwrap();
    assert!(leader.contains(r#""holder":"s1""#), "{leader}");
    assert!(status(&mut client, "web").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_nodes_instances_move_after_the_grace_period() {
    let dir = TestDir::new("uc-scheduler-loss");
    let etcd = Etcd::start(&dir.join("etcd"));
    let mut client = etcd.client().await;
    let mut leases = Vec::new();
    for node in ["w1", "w2", "w3", "w4"] {
        leases.push(heartbeat(&mut client, node, 60).await);
    }
    import(
        &mut client,
        &manifest(
            &["w1", "w2", "w3", "w4"],
            &[("web", json!({"replicas": 3}))],
        ),
    )
    .await;
    let grace = 2;
    let _scheduler = Scheduler::start(&etcd.endpoint, grace, "s1");
    placed_when(&client, "web", "three assignments", |p| p.len() == 3).await;
    assert_eq!(placed(&mut client, "web").await["1"], "w2");

    // w2's node-agent dies: its lease goes, and with it the heartbeat.
    let lost_at = tokio::time::Instant::now();
    client.lease_revoke(leases[1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        placed(&mut client, "web").await["1"],
        "w2",
        "moved within the grace period"
    );
    placed_when(&client, "web", "instance 1 to move to w4", |p| {
        p["1"] == "w4"
    })
    .await;
    assert!(lost_at.elapsed() >= Duration::from_secs(grace));
    let placement = placed(&mut client, "web").await;
    assert!(spread(&placement, 3), "{placement:?}");
    assert_eq!(placement["0"], "w1");
    assert_eq!(placement["2"], "w3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_moves_one_instance_at_a_time_and_uncordon_moves_nothing_back() {
    let dir = TestDir::new("uc-scheduler-drain");
    let etcd = Etcd::start(&dir.join("etcd"));
    let mut client = etcd.client().await;
    let nodes = ["w1", "w2", "w3", "w4", "w5"];
    for node in nodes {
        heartbeat(&mut client, node, 60).await;
    }
    import(
        &mut client,
        &manifest(
            &nodes,
            &[(
                "web",
                json!({"replicas": 3, "placement": {"maxUnavailable": 1}}),
            )],
        ),
    )
    .await;
    let _scheduler = Scheduler::start(&etcd.endpoint, 60, "s1");
    placed_when(&client, "web", "three assignments", |p| p.len() == 3).await;
    for (id, node) in [("0", "w1"), ("1", "w2"), ("2", "w3")] {
        healthy(&mut client, node, "web", id).await;
    }

    // `uc node drain w1` and `uc node drain w2`, at once.
    let drain = serde_json::to_string(&NodeCordon {
        drain: true,
        reason: Some("maintenance".into()),
        since: 0,
    })
    .unwrap();
    let cordons = vec![
        etcd_client::TxnOp::put(keys::node_cordon("w1"), drain.clone(), None),
        etcd_client::TxnOp::put(keys::node_cordon("w2"), drain, None),
    ];
    client
        .txn(etcd_client::Txn::new().and_then(cordons))
        .await
        .unwrap();
    placed_when(&client, "web", "instance 0 to leave w1", |p| p["0"] == "w4").await;
    // Its replacement is not healthy yet: nothing else moves.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(placed(&mut client, "web").await["1"], "w2");

    healthy(&mut client, "w4", "web", "0").await;
    placed_when(&client, "web", "instance 1 to leave w2", |p| p["1"] == "w5").await;
    healthy(&mut client, "w5", "web", "1").await;

    // `uc node uncordon`: the drained nodes take instances again, none move back.
    client.delete(keys::node_cordon("w1"), None).await.unwrap();
    client.delete(keys::node_cordon("w2"), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let placement = placed(&mut client, "web").await;
    assert_eq!(
        placement.into_iter().collect::<Vec<_>>(),
        [("0", "w4"), ("1", "w5"), ("2", "w3")].map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplaceable_service_is_reported_with_its_reason() {
    let dir = TestDir::new("uc-scheduler-unplaceable");
    let etcd = Etcd::start(&dir.join("etcd"));
    let mut client = etcd.client().await;
    for node in ["w1", "w2"] {
        heartbeat(&mut client, node, 60).await;
    }
    let services = [
        ("web", json!({"replicas": 1})),
        (
            "gpu",
            json!({"replicas": 1, "placement": {"labels": {"gpu": "a100"}}, "ports": {"http": {"port": 9090}}}),
        ),
    ];
    import(&mut client, &manifest(&["w1", "w2"], &services)).await;
    let _scheduler = Scheduler::start(&etcd.endpoint, 60, "s1");

    let reported = eventually("gpu's status", WAIT, || {
        let mut client = client.clone();
        async move { status(&mut client, "gpu").await }
    })
    .await;
    assert_eq!((reported.replicas, reported.unplaced), (1, 1));
    for node in ["w1", "w2"] {
        assert_eq!(
            reported.reasons[node],
            ["label: needs gpu=a100, has no gpu"],
            "{node}"
        );
    }
    assert!(placed(&mut client, "gpu").await.is_empty());
    assert_eq!(placed(&mut client, "web").await.len(), 1);
    assert!(status(&mut client, "web").await.is_none());

    // The operator fixes the cluster: the report goes, the replica is placed.
    let mut fixed = manifest(&["w1", "w2"], &services);
    fixed["nodes"]["w2"]["labels"] = json!({"gpu": "a100"});
    import(&mut client, &fixed).await;
    placed_when(&client, "gpu", "gpu to be placed on w2", |p| {
        p.get("0").map(String::as_str) == Some("w2")
    })
    .await;
    eventually("gpu's status to go", WAIT, || {
        let mut client = client.clone();
        async move { status(&mut client, "gpu").await.is_none().then_some(()) }
    })
    .await;
}
