//! Traffic-aware rollouts end to end (issue 16 point 5): uc-lb from flags
//! serves an HTTP listener over a service with one instance on each of two
//! nodes (local HTTP servers, their assignments and statuses written as the
//! scheduler and node-agents write them); the real rollout engine
//! (uc-deployer, in-process) rolls both nodes out while wrk loads the
//! listener. Each node's switch is simulated as nix-agent's would look from
//! the store, with its instance going down for the switch: the server is
//! killed (open connections cut), comes back after half a second, and the
//! node reports the new system healthy. wrk sees no failed request; each
//! node was out of traffic with no open connection when it switched, and
//! back afterwards. Then a control: the same kill without a drain fails
//! requests, so the count above can see failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{listener, port, Lb};
use serde_json::json;
use uc_deployer::cache::{Cache, LocalStore, SigningKey};
use uc_testkit::wait_for;
use uc_types::{
    keys, unix_seconds, Assignment, DesiredSystem, InstancePhase, InstanceState, InstanceStatus,
    ObservedSystem, RolloutRecord, RolloutState, SystemState, TrafficDrain,
};

/// A test key (cache signing is not exercised here).
const SECRET: &str = "test-1:dIbf+X4xryAERjId/qOdY5+3cl+5i1gbmnd0FPQgVmNAPu2irZV60PJEx74uWgcg8BBj1ewQOeI9NnZjtOyI8A==";
/// Each answer takes this long, so requests are in flight when a server dies.
const SERVICE_TIME: Duration = Duration::from_millis(20);
const LOAD_SECONDS: u64 = 12;

/// A node's instance: HTTP/1.1 with keep-alive on a fixed address, answering
/// `name` after SERVICE_TIME; `kill` closes the listener and cuts every open
/// connection at once, `start` serves again on the same address.
struct Instance {
    addr: SocketAddr,
    name: String,
    running: Option<Serving>,
}

/// A running instance: its stop flag, its open connections, its accept loop.
type Serving = (Arc<AtomicBool>, Arc<Mutex<Vec<TcpStream>>>, JoinHandle<()>);

impl Instance {
    fn new(name: &str) -> Instance {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut instance = Instance {
            addr,
            name: name.to_owned(),
            running: None,
        };
        instance.start();
        instance
    }

    fn start(&mut self) {
        let listener = TcpListener::bind(self.addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (stop2, open2, name) = (stop.clone(), open.clone(), self.name.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        open2.lock().unwrap().push(stream.try_clone().unwrap());
                        let name = name.clone();
                        std::thread::spawn(move || serve(stream, &name));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        self.running = Some((stop, open, thread));
    }

    fn kill(&mut self) {
        if let Some((stop, open, thread)) = self.running.take() {
            stop.store(true, Ordering::Relaxed);
            thread.join().unwrap();
            for stream in open.lock().unwrap().drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

fn serve(stream: TcpStream, name: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        // The request head (GETs from uc-lb: no body).
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        std::thread::sleep(SERVICE_TIME);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
            name.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A task on its own runtime, stopped on drop.
struct Background(
    Option<tokio::sync::oneshot::Sender<()>>,
    Option<JoinHandle<()>>,
);

impl Background {
    fn start<Fut: std::future::Future<Output = ()> + 'static>(
        f: impl FnOnce() -> Fut + Send + 'static,
    ) -> Background {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                tokio::select! {
                    () = f() => {}
                    _ = stopped => {}
                }
            });
        });
        Background(Some(stop), Some(thread))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        drop(self.0.take());
        if let Some(thread) = self.1.take() {
            let _ = thread.join();
        }
    }
}

/// The value at `key` (etcdctl, from the agents' thread).
fn etcd_get(endpoint: &str, key: &str) -> Option<String> {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "get", "--print-value-only", key])
        .output()
        .ok()?;
    let value = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
    (out.status.success() && !value.is_empty()).then_some(value)
}

fn put<T: serde::Serialize>(lb: &Lb, key: &str, value: &T) {
    lb.etcd
        .ctl(&["put", key, &serde_json::to_string(value).unwrap()]);
}

fn get<T: serde::de::DeserializeOwned>(lb: &Lb, key: &str) -> Option<T> {
    serde_json::from_str(&lb.etcd.get(key)?).ok()
}

/// What the scheduler and `node`'s node-agent write about web's instance `id`.
fn instance(lb: &Lb, node: &str, id: &str, addr: SocketAddr, state: InstanceState) {
    let ports = BTreeMap::from([("http".to_owned(), addr.port())]);
    let assignment = Assignment {
        node: node.into(),
        ports: ports.clone(),
    };
    put(lb, &keys::service_assignment("web", id), &assignment);
    let status = InstanceStatus {
        service: "web".into(),
        id: id.into(),
        state,
        phase: InstancePhase::Running,
        pid: None,
        restarts: 0,
        address: addr.ip(),
        ports,
        since: unix_seconds(),
        message: None,
    };
    put(
        lb,
        &keys::instance_status(node, &keys::instance_name("web", id)),
        &status,
    );
}

/// What a node looked like when its switch began.
#[derive(Debug)]
struct AtSwitch {
    node: String,
    drain: Option<TrafficDrain>,
    /// The node's backend in the listener's status then (none: drained away).
    listed: Option<serde_json::Value>,
}

/// wrk's summary: (requests, failed: socket errors + non-2xx/3xx).
fn wrk_counts(output: &str) -> (u64, u64) {
    let number = |text: &str| {
        text.split_whitespace()
            .next()
            .unwrap_or("0")
            .parse::<u64>()
            .unwrap_or(0)
    };
    let mut requests = 0;
    let mut failed = 0;
    for line in output.lines().map(str::trim) {
        if line.contains(" requests in ") {
            requests = number(line);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            failed += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1))
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            failed += number(rest);
        }
    }
    (requests, failed)
}

fn wrk(port: u16, seconds: u64) -> std::process::Child {
    Command::new("wrk")
        .args(["-t2", "-c8", &format!("-d{seconds}s"), "--timeout", "5s"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run wrk (Debian's wrk)")
}

fn wrk_output(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "wrk failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_rollout_of_every_node_fails_no_request() {
    let lb = Lb::start("uc-lb-rollout", &["--drain-timeout", "10"]);
    let mut instances = [Instance::new("n1"), Instance::new("n2")];
    let nodes = ["n1", "n2"];
    for (i, (node, inst)) in nodes.iter().zip(&instances).enumerate() {
        instance(&lb, node, &i.to_string(), inst.addr, InstanceState::Healthy);
    }
    let p = port();
    let backends = json!({"backends": {"service": "web", "servicePort": "http", "endpoints": []}});
    lb.put_listener("web", &listener("http", p, &[], backends));
    for inst in &instances {
        lb.wait_backend("web", inst.addr, "up", Duration::from_secs(10));
    }

    // The rollout engine, as uc-deployer runs it.
    let endpoint = lb.etcd.endpoint.clone();
    let _deployer = Background::start(move || async move {
        let client = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        let cache = Arc::new(Cache::new(
            SigningKey::parse("test", SECRET).unwrap(),
            LocalStore::default(),
        ));
        let _ = uc_deployer::rollout::run(client, cache).await;
    });

    // nix-agent on each node, simulated: on a new desired generation the
    // instance goes down for the switch and comes back, then the node
    // reports the new system healthy.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<AtSwitch>>> = Arc::default();
    let agents = {
        let (stop, seen) = (stop.clone(), seen.clone());
        let endpoint = lb.etcd.endpoint.clone();
        let addrs: Vec<SocketAddr> = instances.iter().map(|i| i.addr).collect();
        let (tx, rx) = std::sync::mpsc::channel::<(usize, u64)>();
        let watcher = std::thread::spawn(move || {
            let mut done = [0u64; 2];
            while !stop.load(Ordering::Relaxed) {
                for (i, node) in ["n1", "n2"].iter().enumerate() {
                    let Some(value) = etcd_get(&endpoint, &keys::desired_system(node)) else {
                        continue;
                    };
                    let desired: DesiredSystem = serde_json::from_str(&value).unwrap();
                    if desired.generation == done[i] {
                        continue;
                    }
                    done[i] = desired.generation;
                    let drain = etcd_get(&endpoint, &keys::node_traffic(node))
                        .and_then(|v| serde_json::from_str(&v).ok());
                    let status: Option<serde_json::Value> =
                        etcd_get(&endpoint, &keys::lb_listener_status("local", "web"))
                            .and_then(|v| serde_json::from_str(&v).ok());
                    let listed = status.and_then(|s| {
                        s["backends"]
                            .as_array()?
                            .iter()
                            .find(|b| b["address"] == json!(addrs[i].to_string()))
                            .cloned()
                    });
                    seen.lock().unwrap().push(AtSwitch {
                        node: (*node).to_owned(),
                        drain,
                        listed,
                    });
                    tx.send((i, desired.generation)).unwrap();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        (watcher, rx)
    };

    let load = wrk(p, LOAD_SECONDS);
    let load_started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let record = RolloutRecord {
        id: 1,
        state: RolloutState::Running,
        waves: vec![vec!["n1".into()], vec!["n2".into()]],
        wave: 0,
        targets: nodes
            .iter()
            .map(|n| ((*n).to_owned(), format!("/nix/store/{n}-gen2")))
            .collect(),
        previous: nodes.iter().map(|n| ((*n).to_owned(), None)).collect(),
        health_gate_timeout_seconds: 60,
        drain_timeout_seconds: 10,
        auto_revert: false,
        wave_started: unix_seconds(),
        error: None,
    };
    put(&lb, &keys::rollout_current(), &record);

    // Play nix-agent for each switch the engine asks for.
    let (watcher, switches) = agents;
    let mut switched = 0;
    while switched < 2 {
        let (i, generation) = switches
            .recv_timeout(Duration::from_secs(20))
            .expect("the engine asks for a switch within 20 s");
        let node = nodes[i];
        let report = |state: SystemState| ObservedSystem {
            store_path: Some(format!("/nix/store/{node}-gen2")),
            state,
            generation,
            since: unix_seconds(),
            error: None,
        };
        put(
            &lb,
            &keys::observed_system(node),
            &report(SystemState::Switching),
        );
        instance(
            &lb,
            node,
            &i.to_string(),
            instances[i].addr,
            InstanceState::Starting,
        );
        instances[i].kill();
        std::thread::sleep(Duration::from_millis(500));
        instances[i].start();
        instance(
            &lb,
            node,
            &i.to_string(),
            instances[i].addr,
            InstanceState::Healthy,
        );
        put(
            &lb,
            &keys::observed_system(node),
            &report(SystemState::Healthy),
        );
        switched += 1;
    }
    let finished = wait_for("the rollout to succeed", Duration::from_secs(20), || {
        let r: RolloutRecord = get(&lb, &keys::rollout_current())?;
        (r.state == RolloutState::Succeeded).then_some(r)
    });
    let took = load_started.elapsed();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert_eq!(finished.error, None);
    assert!(
        took + Duration::from_secs(2) < Duration::from_secs(LOAD_SECONDS),
        "the rollout outlasted the load ({took:?})"
    );
    let output = wrk_output(load);
    eprintln!("rollout done {took:?} into the load\n{output}");
    let (requests, failed) = wrk_counts(&output);
    assert!(requests > 1000, "{output}");
    assert_eq!(failed, 0, "failed requests under the rollout:\n{output}");

    // Each node was out of traffic, with no open connection, when it switched.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for at in seen.iter() {
        let drain = at.drain.as_ref().unwrap_or_else(|| panic!("{at:?}"));
        assert!(drain.drained && drain.rollout == Some(1), "{at:?}");
        let still_open = at.listed.as_ref().is_some_and(|b| {
            b["state"] != json!("draining") || b["connections"].as_u64().unwrap_or(1) > 0
        });
        assert!(!still_open, "switched while uc-lb had connections: {at:?}");
    }
    assert_eq!(seen[0].node, "n1");
    // And back in traffic after.
    for node in nodes {
        assert_eq!(lb.etcd.get(&keys::node_traffic(node)), None, "{node}");
    }
    for inst in &instances {
        lb.wait_backend("web", inst.addr, "up", Duration::from_secs(10));
    }

    // Control: the same switch without a drain fails requests, which wrk counts.
    let load = wrk(p, 3);
    std::thread::sleep(Duration::from_secs(1));
    instances[0].kill();
    let output = wrk_output(load);
    let (_, failed) = wrk_counts(&output);
    eprintln!("control (no drain):\n{output}");
    assert!(
        failed > 0,
        "killing a backend in rotation failed nothing:\n{output}"
    );
}
