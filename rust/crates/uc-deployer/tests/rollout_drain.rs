//! The rollout engine's drain steps against a real etcd, the node's switch
//! and health simulated by writing what nix-agent and uc-lb would: a node
//! is taken out of traffic before it is given its new system, switched once
//! no uc-lb reports an open connection to it (or the drain timeout is
//! over), put back once healthy, and done once uc-lb has it in rotation
//! again; each step survives a deployer restart
//! (the task is aborted mid-way and started again), and a halted rollout
//! puts its drained nodes back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::task::JoinHandle;
use uc_deployer::cache::{Cache, LocalStore, SigningKey};
use uc_testkit::{Etcd, TestDir};
use uc_types::{
    keys, unix_seconds, Assignment, DesiredSystem, InstancePhase, InstanceState, InstanceStatus,
    LbBackendState, LbListenerStatus, ObservedSystem, RolloutRecord, RolloutState, SystemState,
    TrafficDrain,
};

const SECRET: &str = "test-1:dIbf+X4xryAERjId/qOdY5+3cl+5i1gbmnd0FPQgVmNAPu2irZV60PJEx74uWgcg8BBj1ewQOeI9NnZjtOyI8A==";
const BACKEND: &str = "127.0.0.1:18080";

fn engine(client: &Client) -> JoinHandle<()> {
    let cache = Arc::new(Cache::new(
        SigningKey::parse("test", SECRET).unwrap(),
        LocalStore::default(),
    ));
    let client = client.clone();
    tokio::spawn(async move {
        let _ = uc_deployer::rollout::run(client, cache).await;
    })
}

async fn put<T: Serialize>(client: &mut Client, key: &str, value: &T) {
    client
        .put(key, serde_json::to_vec(value).unwrap(), None)
        .await
        .unwrap();
}

async fn get<T: DeserializeOwned>(client: &mut Client, key: &str) -> Option<T> {
    let response = client.get(key, None).await.unwrap();
    let kv = response.kvs().first()?;
    Some(serde_json::from_slice(kv.value()).unwrap())
}

/// Polls `f` every 50 ms for up to 15 s.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn record(id: u64, waves: &[&[&str]], drain_timeout_seconds: u64) -> RolloutRecord {
    let nodes = waves.iter().flat_map(|w| w.iter());
    RolloutRecord {
        id,
        state: RolloutState::Running,
        waves: waves
            .iter()
            .map(|w| w.iter().map(|n| (*n).to_owned()).collect())
            .collect(),
        wave: 0,
        targets: nodes
            .clone()
            .map(|n| ((*n).to_owned(), format!("/nix/store/{n}-gen2")))
            .collect(),
        previous: nodes.map(|n| ((*n).to_owned(), None)).collect(),
        health_gate_timeout_seconds: 60,
        drain_timeout_seconds,
        auto_revert: false,
        wave_started: unix_seconds(),
        error: None,
    }
}

/// What the scheduler and n1's node-agent write: web-0 on n1 at BACKEND.
async fn instance_on_n1(client: &mut Client) {
    let addr: std::net::SocketAddr = BACKEND.parse().unwrap();
    let assignment = Assignment {
        node: "n1".into(),
        ports: BTreeMap::from([("http".to_owned(), addr.port())]),
    };
    put(client, &keys::service_assignment("web", "0"), &assignment).await;
    let status = InstanceStatus {
        service: "web".into(),
        id: "0".into(),
        state: InstanceState::Healthy,
        phase: InstancePhase::Running,
        pid: None,
        restarts: 0,
        address: addr.ip(),
        ports: BTreeMap::from([("http".to_owned(), addr.port())]),
        since: 0,
        message: None,
    };
    let key = keys::instance_status("n1", &keys::instance_name("web", "0"));
    put(client, &key, &status).await;
}

/// What uc-lb on edge1 writes with BACKEND in `state`.
async fn lb_reports(client: &mut Client, state: LbBackendState, connections: Option<u64>) {
    let status = serde_json::json!({
        "node": "edge1",
        "listener": "www",
        "address": "127.0.0.1:80",
        "serving": true,
        "backends": [{"address": BACKEND, "state": state, "connections": connections}],
    });
    // As uc-types reads it (the test writes what a reader accepts).
    let _: LbListenerStatus = serde_json::from_value(status.clone()).unwrap();
    put(client, &keys::lb_listener_status("edge1", "www"), &status).await;
}

async fn desired(client: &mut Client, node: &str) -> Option<DesiredSystem> {
    get(client, &keys::desired_system(node)).await
}

async fn drain_of(client: &mut Client, node: &str) -> Option<TrafficDrain> {
    get(client, &keys::node_traffic(node)).await
}

async fn report_healthy(client: &mut Client, node: &str, generation: u64) {
    let observed = ObservedSystem {
        store_path: Some(format!("/nix/store/{node}-gen2")),
        state: SystemState::Healthy,
        generation,
        since: unix_seconds(),
        error: None,
    };
    put(client, &keys::observed_system(node), &observed).await;
}

/// A store holding web-0 on n1, edge1's uc-lb with it in rotation, and
/// `rollout` running.
async fn store_with(name: &str, rollout: &RolloutRecord) -> (TestDir, Etcd, Client) {
    let dir = TestDir::new(name);
    let etcd = Etcd::start(&dir.join("store"));
    let mut client = etcd.client().await;
    instance_on_n1(&mut client).await;
    lb_reports(&mut client, LbBackendState::Up, None).await;
    put(&mut client, &keys::rollout_current(), rollout).await;
    (dir, etcd, client)
}

/// Waits for `node`'s desired system.
async fn until_desired(client: &Client, node: &str) -> DesiredSystem {
    eventually(&format!("{node} switched"), || {
        let mut c = client.clone();
        async move { desired(&mut c, node).await }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_drained_switched_and_restored_across_restarts() {
    let (_dir, _etcd, mut client) =
        store_with("uc-deployer-drain", &record(5, &[&["n1"]], 30)).await;

    // Drained first; not switched while uc-lb still has it in rotation.
    let mut deployer = engine(&client);
    let first = eventually("n1 drained", || {
        let mut c = client.clone();
        async move { drain_of(&mut c, "n1").await }
    })
    .await;
    assert!(first.drained && first.rollout == Some(5), "{first:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        desired(&mut client, "n1").await,
        None,
        "switched while open"
    );

    // A restart keeps the drain as written (its bound counts from then).
    deployer.abort();
    deployer = engine(&client);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(drain_of(&mut client, "n1").await, Some(first.clone()));
    assert_eq!(desired(&mut client, "n1").await, None);

    // uc-lb drains it: still open connections, then none.
    lb_reports(&mut client, LbBackendState::Draining, Some(2)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        desired(&mut client, "n1").await,
        None,
        "switched with 2 open"
    );
    lb_reports(&mut client, LbBackendState::Draining, Some(0)).await;
    let given = until_desired(&client, "n1").await;
    assert_eq!(
        (given.generation, given.store_path.as_str()),
        (10, "/nix/store/n1-gen2")
    );
    assert_eq!(
        drain_of(&mut client, "n1").await,
        Some(first),
        "drained while switching"
    );

    // Restarted while the node switches; it reports healthy: back in
    // traffic, and the rollout waits for uc-lb to have it in rotation again.
    deployer.abort();
    report_healthy(&mut client, "n1", 10).await;
    deployer = engine(&client);
    let restored = eventually("n1 restored", || {
        let mut c = client.clone();
        async move { drain_of(&mut c, "n1").await.filter(|d| !d.drained) }
    })
    .await;
    assert_eq!(restored.serving.len(), 1, "{restored:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let running: RolloutRecord = get(&mut client, &keys::rollout_current()).await.unwrap();
    assert_eq!(
        running.state,
        RolloutState::Running,
        "done before n1 is back"
    );
    lb_reports(&mut client, LbBackendState::Up, None).await;
    let done = eventually("rollout 5 done", || {
        let mut c = client.clone();
        async move {
            let r: RolloutRecord = get(&mut c, &keys::rollout_current()).await?;
            (r.state == RolloutState::Succeeded).then_some(r)
        }
    })
    .await;
    assert_eq!(done.error, None);
    assert_eq!(drain_of(&mut client, "n1").await, None, "not restored");
    deployer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_is_bounded_and_a_node_without_listeners_does_not_wait() {
    // uc-lb never lets go of n1's backend; n2 runs nothing behind a listener.
    let rollout = record(3, &[&["n1", "n2"]], 2);
    let (_dir, _etcd, mut client) = store_with("uc-deployer-drain-timeout", &rollout).await;
    let started = tokio::time::Instant::now();
    let deployer = engine(&client);
    until_desired(&client, "n2").await;
    let n2_after = started.elapsed();
    assert!(
        drain_of(&mut client, "n2").await.is_some(),
        "n2 switched undrained"
    );
    assert_eq!(desired(&mut client, "n1").await, None, "n1 did not wait");
    until_desired(&client, "n1").await;
    let n1_after = started.elapsed();
    eprintln!("n2 switched after {n2_after:?}, n1 after {n1_after:?}");
    assert!(n2_after < Duration::from_secs(2), "n2 waited {n2_after:?}");
    assert!(
        n1_after >= Duration::from_secs(1),
        "n1 waited only {n1_after:?}"
    );
    deployer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halted_rollout_puts_its_drained_nodes_back_and_only_those() {
    let (_dir, _etcd, mut client) =
        store_with("uc-deployer-drain-halt", &record(6, &[&["n1"]], 30)).await;
    // An operator's drain of n3 and one rollout 4 left on n4.
    let operators = TrafficDrain {
        drained: true,
        reason: "maintenance".into(),
        since: 1,
        rollout: None,
        serving: Vec::new(),
    };
    put(&mut client, &keys::node_traffic("n3"), &operators).await;
    let leftover = TrafficDrain {
        rollout: Some(4),
        reason: "rollout 4, wave 1".into(),
        ..operators.clone()
    };
    put(&mut client, &keys::node_traffic("n4"), &leftover).await;
    let deployer = engine(&client);
    eventually("n1 drained, n4's leftover restored", || {
        let mut c = client.clone();
        async move {
            let drained = drain_of(&mut c, "n1").await.is_some();
            let leftover = drain_of(&mut c, "n4").await;
            (drained && leftover.is_none()).then_some(())
        }
    })
    .await;

    // Aborted (as `uc rollout abort` does): n1 goes back, n3 stays out.
    let mut aborted: RolloutRecord = get(&mut client, &keys::rollout_current()).await.unwrap();
    aborted.state = RolloutState::Aborted;
    put(&mut client, &keys::rollout_current(), &aborted).await;
    eventually("n1 back in traffic", || {
        let mut c = client.clone();
        async move { drain_of(&mut c, "n1").await.is_none().then_some(()) }
    })
    .await;
    assert_eq!(drain_of(&mut client, "n3").await, Some(operators));
    assert_eq!(
        desired(&mut client, "n1").await,
        None,
        "an aborted rollout switched"
    );
    deployer.abort();
}
