//! A simulated cluster on one machine: a real etcd, two in-process
//! schedulers and four uc-node-agent processes on 127.77.0.{1..4}, running a
//! 3-replica HTTP service (python3's http.server), a crashing service and an
//! unplaceable one. One scenario, step by step, as an operator would see it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use serde_json::{json, Value};
use uc_testkit::store::{eventually, ha_manifest, import, placed, values_under};
use uc_testkit::{get_ok, Etcd, KillOnDrop, TestDir};
use uc_types::{keys, Assignment, InstancePhase, InstanceState, InstanceStatus, NodeCordon};

const NODES: [&str; 4] = ["w1", "w2", "w3", "w4"];
const SECRET: &str = "s3cr3t-for-the-test";

fn address(node: &str) -> String {
    let n = NODES.iter().position(|x| *x == node).unwrap() + 1;
    format!("127.77.0.{n}")
}

/// hosts/ha's manifest with nodes w1..w4 and the test's services.
fn manifest(secret_file: &Path) -> Value {
    let mut m = ha_manifest(&NODES, |n, node| node["addresses"] = json!([address(n)]));
    let mut web = m["services"]["web"].clone();
    web["replicas"] = json!(3);
    web["eligibleNodes"] = json!(NODES);
    web["exec"]["command"] = json!(["/bin/sh", "-c",
        "cp \"$SESSION_KEY_FILE\" secret.txt && echo \"$UC_INSTANCE on $UC_NODE: $GREETING\" > whoami.txt && exec python3 -m http.server --bind \"$UC_ADDRESS\" \"$UC_PORT_HTTP\""]);
    web["secretFiles"] = json!({"SESSION_KEY": secret_file.display().to_string()});
    web["healthCheck"]["intervalSeconds"] = json!(1);
    web["healthCheck"]["timeoutSeconds"] = json!(1);
    web["healthCheck"]["failureThreshold"] = json!(2);
    let mut crashy = web.clone();
    crashy["replicas"] = json!(1);
    crashy["ports"] = json!({});
    crashy["healthCheck"] = Value::Null;
    crashy["secretFiles"] = json!({});
    crashy["listeners"] = json!([]);
    crashy["exec"]["command"] = json!(["/bin/sh", "-c", "echo crashing on purpose; exit 3"]);
    let mut huge = crashy.clone();
    huge["resources"]["cpuMillis"] = json!(64000);
    huge["eligibleNodes"] = json!([]);
    m["services"] = json!({"web": web, "crashy": crashy, "huge": huge});
    m
}

struct Agent {
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    process: Option<KillOnDrop>,
}

impl Agent {
    fn new(dir: &Path, node: &'static str, endpoint: &str) -> Agent {
        let state = dir.join(format!("agent-{node}"));
        std::fs::create_dir_all(&state).unwrap();
        let config = state.join("node-agent.json");
        let body = json!({
            "schemaVersion": 1, "cluster": "test", "node": node,
            "httpListen": format!("{}:0", address(node)),
            "storeEndpoints": [endpoint], "address": address(node),
            "stateDir": state.join("state").display().to_string(),
            "heartbeatTtlSeconds": 2,
        });
        std::fs::write(&config, body.to_string()).unwrap();
        let mut agent = Agent {
            config,
            log: state.join("agent.log"),
            process: None,
        };
        agent.start();
        agent
    }

    fn start(&mut self) {
        self.start_with(&[]);
    }

    fn start_with(&mut self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child: Child = Command::new(env!("CARGO_BIN_EXE_uc-node-agent"))
            .args([
                "--config",
                self.config.to_str().unwrap(),
                "--backend",
                "process",
            ])
            .args(["--stop-timeout-seconds", "3"])
            .args(extra)
            .stderr(log)
            .spawn()
            .unwrap();
        self.process = Some(KillOnDrop(child));
    }

    /// kill -9: the agent only (its instances keep running).
    fn kill(&mut self) {
        self.process.take();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        uc_testkit::kill_node_agent_instances(&self.config.with_file_name("state"));
    }
}

async fn statuses(client: &mut Client) -> BTreeMap<String, InstanceStatus> {
    values_under(client, &keys::instances_prefix()).await
}

/// The process ids of `node`'s instances, as their statuses say.
async fn instance_pids(client: &mut Client, node: &str) -> Vec<u32> {
    statuses(client)
        .await
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{node}/")))
        .filter_map(|(_, s)| s.pid)
        .collect()
}

/// Nodes whose web instance is healthy, and answers over HTTP with the secret.
async fn serving_web(client: &mut Client) -> BTreeSet<String> {
    let mut serving = BTreeSet::new();
    for (key, status) in statuses(client).await {
        let node = key.split('/').next().unwrap().to_owned();
        if status.service == "web" && status.state == InstanceState::Healthy {
            let url = format!("{}:{}", address(&node), status.ports["http"]);
            if get_ok(&format!("http://{url}/secret.txt")).as_deref() == Some(SECRET) {
                serving.insert(node);
            }
        }
    }
    serving
}

/// Update slots web's rolling update holds.
async fn update_slots(client: &mut Client) -> i64 {
    let prefix = keys::service_update_slots_prefix("web");
    let slots = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    slots.count()
}

fn kill_group(pid: u32) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

fn scheduler(
    endpoint: &str,
    holder: &str,
) -> tokio::task::JoinHandle<Result<(), uc_scheduler::daemon::Error>> {
    let config = uc_types::SchedulerConfig {
        schema_version: uc_types::SCHEMA_VERSION,
        cluster: "test".into(),
        node: holder.into(),
        http_listen: "127.77.0.100:0".parse().unwrap(),
        store_endpoints: vec![endpoint.to_owned()],
        node_loss_grace_seconds: 2,
    };
    let options = uc_scheduler::daemon::Options {
        holder: holder.into(),
        leader_ttl: Duration::from_secs(2),
    };
    tokio::spawn(uc_scheduler::daemon::run(
        config,
        options,
        std::future::pending(),
    ))
}

/// Every web assignment change, in revision order, checked as it comes: never
/// two replicas on one node, never more than `replicas` at once.
fn audit_web_placements(endpoint: String) -> Arc<Mutex<Vec<String>>> {
    let violations = Arc::new(Mutex::new(Vec::new()));
    let found = violations.clone();
    tokio::spawn(async move {
        let mut client = Client::connect([endpoint], None).await.unwrap();
        let prefix = keys::service_assignments_prefix("web");
        let mut stream = client
            .watch(
                prefix.clone(),
                Some(WatchOptions::new().with_prefix().with_start_revision(1)),
            )
            .await
            .unwrap();
        let mut placed: BTreeMap<String, String> = BTreeMap::new();
        while let Ok(Some(response)) = stream.message().await {
            for event in response.events() {
                let kv = event.kv().unwrap();
                let id = String::from_utf8_lossy(kv.key())[prefix.len()..].to_owned();
                match event.event_type() {
                    EventType::Put => {
                        let a: Assignment = serde_json::from_slice(kv.value()).unwrap();
                        placed.insert(id, a.node);
                    }
                    EventType::Delete => {
                        placed.remove(&id);
                    }
                }
            }
            let nodes: BTreeSet<&String> = placed.values().collect();
            if nodes.len() != placed.len() || placed.len() > 3 {
                found.lock().unwrap().push(format!("{placed:?}"));
            }
        }
    });
    violations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_survive_crashes_drains_node_loss_and_scheduler_failover() {
    let dir = TestDir::new("uc-node-agent-cluster");
    let etcd = Etcd::start(&dir.join("etcd"));
    let secret = dir.join("web-session-key");
    std::fs::write(&secret, SECRET).unwrap();
    let mut client = etcd.client().await;
    let violations = audit_web_placements(etcd.endpoint.clone());
    import(&mut client, &manifest(&secret)).await;
    let mut schedulers = BTreeMap::from([
        ("s1", scheduler(&etcd.endpoint, "s1")),
        ("s2", scheduler(&etcd.endpoint, "s2")),
    ]);
    let mut agents: BTreeMap<&str, Agent> = NODES
        .iter()
        .map(|n| (*n, Agent::new(&dir, n, &etcd.endpoint)))
        .collect();

    // 1. Three replicas on three nodes, healthy, serving the secret's copy.
    let serving = eventually("3 web replicas serving", Duration::from_secs(30), || {
        let mut c = client.clone();
        async move {
            let s = serving_web(&mut c).await;
            (s.len() == 3).then_some(s)
        }
    })
    .await;
    let first_placement = placed(&mut client, "web").await;
    assert_eq!(
        first_placement.values().cloned().collect::<BTreeSet<_>>(),
        serving,
        "serving nodes are the assigned ones"
    );
    let spare = *NODES.iter().find(|n| !serving.contains(**n)).unwrap();
    println!("web on {serving:?}, spare node {spare}");

    // 2. The crashing service restarts with backoff and is reported unhealthy.
    let crashy = eventually("crashy restarted twice", Duration::from_secs(20), || {
        let mut c = client.clone();
        async move {
            statuses(&mut c)
                .await
                .into_values()
                .find(|s| s.service == "crashy" && s.restarts >= 2)
        }
    })
    .await;
    assert_eq!(crashy.state, InstanceState::Unhealthy);
    assert!(
        crashy
            .message
            .as_deref()
            .unwrap_or("")
            .contains("exit status: 3"),
        "{crashy:?}"
    );
    let before = crashy.restarts;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = statuses(&mut client)
        .await
        .into_values()
        .find(|s| s.service == "crashy")
        .unwrap();
    // Without backoff it would restart hundreds of times in 5 s.
    assert!(
        after.restarts > before && after.restarts <= before + 3,
        "{before} -> {after:?}"
    );
    assert!(matches!(
        after.phase,
        InstancePhase::Backoff | InstancePhase::Running
    ));

    // 3. The unplaceable service is reported with each node's reason.
    let huge = eventually("huge reported unplaceable", Duration::from_secs(10), || {
        let mut c = client.clone();
        async move {
            let r = c.get(keys::scheduler_status("huge"), None).await.unwrap();
            r.kvs()
                .first()
                .map(|kv| serde_json::from_slice::<uc_types::PlacementStatus>(kv.value()).unwrap())
        }
    })
    .await;
    assert_eq!(huge.unplaced, 1);
    for node in NODES {
        let reasons = huge.reasons[node].join("; ");
        assert!(reasons.contains("cpu"), "{node}: {reasons}");
    }

    // 4. A restarted agent adopts its instances: same pid, no duplicate.
    let victim = serving.iter().next().unwrap().clone();
    let key = |s: &BTreeMap<String, InstanceStatus>| {
        s.iter()
            .find(|(k, v)| k.starts_with(&format!("{victim}/")) && v.service == "web")
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let old = key(&statuses(&mut client).await);
    let agent = agents.get_mut(victim.as_str()).unwrap();
    agent.kill();
    agent.start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let adopted = key(&statuses(&mut client).await);
    assert_eq!(adopted.pid, old.pid, "adopted, not restarted");
    assert_eq!(adopted.restarts, old.restarts);
    assert_eq!(adopted.state, InstanceState::Healthy);
    let log = std::fs::read_to_string(&agent.log).unwrap();
    assert!(log.contains("adopted a running instance"), "{log}");

    // 5. The scheduler leader dies; the standby takes over, nothing moves.
    let leader = eventually("a scheduler leader", Duration::from_secs(10), || {
        let mut c = client.clone();
        async move {
            let r = c.get(keys::scheduler_leader(), None).await.unwrap();
            r.kvs().first().map(|kv| {
                serde_json::from_slice::<uc_types::LeaderRecord>(kv.value())
                    .unwrap()
                    .holder
            })
        }
    })
    .await;
    schedulers.remove(leader.as_str()).unwrap().abort();
    let standby = eventually("the standby leading", Duration::from_secs(15), || {
        let mut c = client.clone();
        let leader = leader.clone();
        async move {
            let r = c.get(keys::scheduler_leader(), None).await.unwrap();
            r.kvs()
                .first()
                .map(|kv| {
                    serde_json::from_slice::<uc_types::LeaderRecord>(kv.value())
                        .unwrap()
                        .holder
                })
                .filter(|h| *h != leader)
        }
    })
    .await;
    println!("scheduler {leader} killed, {standby} leads");
    assert_eq!(
        placed(&mut client, "web").await,
        first_placement,
        "failover moved nothing"
    );

    // 6. A new spec rolls out one instance at a time (maxUnavailable 1). A
    //    broken one stops after the first instance; the others keep serving.
    let mut broken = manifest(&secret);
    broken["services"]["web"]["exec"]["command"] = json!(["/bin/sh", "-c", "exit 7"]);
    import(&mut client, &broken).await;
    eventually(
        "the first instance on the broken spec",
        Duration::from_secs(20),
        || {
            let mut c = client.clone();
            async move {
                statuses(&mut c)
                    .await
                    .into_values()
                    .find(|s| s.service == "web" && s.restarts > 0)
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        serving_web(&mut client).await.len(),
        2,
        "the rollout stopped at one broken instance"
    );
    assert_eq!(
        update_slots(&mut client).await,
        1,
        "the broken instance keeps its slot"
    );
    // The fix goes on from there.
    let mut m = manifest(&secret);
    m["services"]["web"]["environment"]["GREETING"] = json!("v2");
    import(&mut client, &m).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lowest = 3;
    loop {
        let now = serving_web(&mut client).await;
        lowest = lowest.min(now.len());
        let updated = now
            .iter()
            .filter(|node| {
                let url = format!("{}:8080", address(node));
                get_ok(&format!("http://{url}/whoami.txt"))
                    .is_some_and(|w| w.trim_end().ends_with(": v2"))
            })
            .count();
        if updated == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rolling update did not finish: {updated} of 3 updated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lowest >= 2,
        "the update took {} of 3 replicas down at once",
        3 - lowest
    );
    assert_eq!(
        placed(&mut client, "web").await,
        first_placement,
        "an update moves nothing"
    );
    eventually(
        "every update slot given back",
        Duration::from_secs(10),
        || {
            let mut c = client.clone();
            async move { (update_slots(&mut c).await == 0).then_some(()) }
        },
    )
    .await;

    // 7. Drain a node: its replica moves to the spare, never more than
    //    maxUnavailable (1) of 3 down at once.
    let drained = serving.iter().next_back().unwrap().clone();
    let cordon = NodeCordon {
        drain: true,
        reason: Some("test".into()),
        since: 0,
    };
    client
        .put(
            keys::node_cordon(&drained),
            serde_json::to_vec(&cordon).unwrap(),
            None,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut lowest = 3;
    loop {
        let now = serving_web(&mut client).await;
        lowest = lowest.min(now.len());
        if now.len() == 3 && !now.contains(&drained) && now.contains(spare) {
            break;
        }
        assert!(Instant::now() < deadline, "drain did not finish: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lowest >= 2,
        "a drain took {} of 3 replicas down at once",
        3 - lowest
    );
    client
        .delete(keys::node_cordon(&drained), None)
        .await
        .unwrap();
    let after_drain = placed(&mut client, "web").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        placed(&mut client, "web").await,
        after_drain,
        "uncordon moved nothing back"
    );

    // 8. A node dies with its instances: they come back elsewhere after
    //    the grace period.
    let lost = spare.to_owned();
    let lost_pids = instance_pids(&mut client, &lost).await;
    agents.get_mut(lost.as_str()).unwrap().kill();
    for pid in lost_pids {
        kill_group(pid);
    }
    let started = Instant::now();
    let back = eventually(
        "web rescheduled off the lost node",
        Duration::from_secs(40),
        || {
            let mut c = client.clone();
            let lost = lost.clone();
            async move {
                let s = serving_web(&mut c).await;
                (s.len() == 3 && !s.contains(&lost)).then_some(s)
            }
        },
    )
    .await;
    println!(
        "node {lost} lost; web back on {back:?} after {:?}",
        started.elapsed()
    );
    assert!(
        violations.lock().unwrap().is_empty(),
        "placements broke anti-affinity or replicas: {:?}",
        violations.lock().unwrap()
    );
    // 9. SIGTERM with --stop-instances-on-exit stops the node's instances.
    let node = back.iter().next().unwrap().clone();
    let pids = instance_pids(&mut client, &node).await;
    assert!(!pids.is_empty());
    let agent = agents.get_mut(node.as_str()).unwrap();
    agent.kill();
    agent.start_with(&["--stop-instances-on-exit"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut process = agent.process.take().unwrap();
    let exit = tokio::task::spawn_blocking(move || process.terminate(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(exit.success(), "{exit}");
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "instance {pid} still runs: {stat}"
        );
    }
    for (_, s) in schedulers {
        s.abort();
    }
    drop(agents);
    drop(etcd);
}
