//! VIP failover between two uc-lb nodes, in network namespaces the test
//! creates (root only: it prints a SKIP line otherwise).
//!
//! A bridge (in its own namespace) joins three namespaces on 198.18.N.0/24:
//! the LB nodes `a` (.1) and `b` (.2) and a client `c` (.3), and the root
//! namespace (.254) through a veth, where the store (etcd) and the HTTP
//! backend listen. One `http` listener is declared on the VIP .100, an
//! address no namespace has. Each uc-lb runs inside its namespace with
//! `ip netns exec`, from flags, with a 5 s VIP lease.
//!
//! Checked: `a` takes the VIP (address on its eth0, key, /health,
//! /metrics, status key) and the client reaches it; `kill -9` of `a`: `b`
//! takes the VIP within the TTL plus a 2 s margin, and the client's ARP
//! entry moves to `b`'s MAC (gratuitous ARP) with new connections served;
//! a restarted `a` removes the address its killed run left and follows;
//! SIGTERM of `b`: the VIP is released at once (under 2 s, far below the
//! TTL) and `a` takes it back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uc_testkit::{free_port, wait_for, Etcd, KillOnDrop, TestDir};
use uc_types::keys;

use common::{curl, listener, Backend};

const TTL: u64 = 5;
/// What a takeover after a holder's death may take beyond the TTL: the
/// store's expiry check, one campaign round, the address going up.
const MARGIN: Duration = Duration::from_secs(2);

fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("run ip")
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces, the bridge and the root veth; all removed on drop.
struct Net {
    prefix: String,
    /// The first three octets of the test subnet.
    subnet: String,
}

impl Net {
    fn create() -> Net {
        let id = std::process::id() % 100_000;
        let net = Net {
            prefix: format!("ucv{id}"),
            subnet: format!("198.18.{}", id % 250),
        };
        net.cleanup();
        let sw = net.ns("sw");
        for ns in ["sw", "a", "b", "c"] {
            ip_ok(&["netns", "add", &net.ns(ns)]);
            ip_ok(&["-n", &net.ns(ns), "link", "set", "lo", "up"]);
        }
        ip_ok(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip_ok(&["-n", &sw, "link", "set", "br0", "up"]);
        for (ns, host) in [("a", 1), ("b", 2), ("c", 3)] {
            let port = format!("{ns}0");
            ip_ok(&[
                "-n",
                &sw,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &net.ns(ns),
            ]);
            ip_ok(&["-n", &sw, "link", "set", &port, "master", "br0", "up"]);
            let address = format!("{}.{host}/24", net.subnet);
            ip_ok(&["-n", &net.ns(ns), "addr", "add", &address, "dev", "eth0"]);
            ip_ok(&["-n", &net.ns(ns), "link", "set", "eth0", "up"]);
        }
        let root = net.root_veth();
        ip_ok(&[
            "link", "add", &root, "type", "veth", "peer", "name", "r0", "netns", &sw,
        ]);
        ip_ok(&["-n", &sw, "link", "set", "r0", "master", "br0", "up"]);
        ip_ok(&[
            "addr",
            "add",
            &format!("{}/24", net.host(254)),
            "dev",
            &root,
        ]);
        ip_ok(&["link", "set", &root, "up"]);
        net
    }

    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn root_veth(&self) -> String {
        format!("{}r", self.prefix)
    }

    fn host(&self, n: u8) -> String {
        format!("{}.{n}", self.subnet)
    }

    fn cleanup(&self) {
        for ns in ["a", "b", "c", "sw"] {
            let _ = ip(&["netns", "del", &self.ns(ns)]);
        }
        let _ = ip(&["link", "del", &self.root_veth()]);
    }

    /// Whether `address` is on an interface of namespace `ns`.
    fn has_address(&self, ns: &str, address: &str) -> bool {
        let out = ip(&["-n", &self.ns(ns), "-o", "addr", "show"]);
        String::from_utf8_lossy(&out.stdout).contains(&format!("inet {address}/"))
    }

    fn mac(&self, ns: &str) -> String {
        let out = ip(&["-n", &self.ns(ns), "-o", "link", "show", "eth0"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let after = text.split("link/ether ").nth(1).expect("eth0's MAC");
        after.split_whitespace().next().unwrap().to_owned()
    }

    /// The MAC the client's neighbour cache has for `address`.
    fn client_neighbour(&self, address: &str) -> Option<String> {
        let out = ip(&["-n", &self.ns("c"), "neigh", "show", address, "dev", "eth0"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let after = text.split("lladdr ").nth(1)?;
        Some(after.split_whitespace().next()?.to_owned())
    }

    /// An HTTP GET from the client namespace: (code, body).
    fn client_get(&self, url: &str) -> Option<(u16, String)> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("c"), "curl", "-s", "-m", "2"])
            .args(["-w", "\n%{http_code}", url])
            .stderr(Stdio::null())
            .output()
            .expect("run curl in the client namespace");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n')?;
        Some((code.parse().ok()?, body.to_owned()))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.cleanup();
    }
}

struct Node {
    name: String,
    ns: String,
    http: String,
    process: KillOnDrop,
}

impl Node {
    fn start(net: &Net, dir: &TestDir, ns: &str, host: u8, store: &str, run: &str) -> Node {
        let name = format!("lb-{ns}");
        let http = format!("{}:9154", net.host(host));
        let log = std::fs::File::create(dir.join(format!("{name}-{run}.log"))).unwrap();
        let process = KillOnDrop::spawn(
            Command::new("ip")
                .args(["netns", "exec", &net.ns(ns)])
                .arg(env!("CARGO_BIN_EXE_uc-lb"))
                .args(["--store", store, "--node", &name, "--http", &http])
                .args(["--vip-lease-ttl", &TTL.to_string()])
                .env("RUST_LOG", "info")
                .stderr(log),
        );
        let node = Node {
            name,
            ns: ns.to_owned(),
            http,
            process,
        };
        wait_for(
            &format!("{}'s /health", node.name),
            Duration::from_secs(10),
            || node.health(),
        );
        node
    }

    fn health(&self) -> Option<Value> {
        let (_, body) = curl(&["-m", "2", &format!("http://{}/health", self.http)])?;
        serde_json::from_str(&body).ok()
    }

    fn metrics(&self) -> String {
        curl(&["-m", "2", &format!("http://{}/metrics", self.http)])
            .unwrap()
            .1
    }

    /// The VIP as this node's /health shows it on listener `web`.
    fn vip(&self) -> Option<Value> {
        let vip = self.health()?["listeners"]["web"]["vip"].clone();
        (!vip.is_null()).then_some(vip)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Waits until `ns` holds `vip` (address up, store key naming its node);
/// how long that took.
fn wait_holder(net: &Net, etcd: &Etcd, node: &Node, vip: &str, within: Duration) -> Duration {
    let start = Instant::now();
    let key = keys::lb_vip(vip.parse().unwrap());
    wait_for(
        &format!("{} to hold the VIP {vip}", node.name),
        within,
        || {
            (net.has_address(&node.ns, vip) && etcd.get(&key).as_deref() == Some(&node.name))
                .then_some(())
        },
    );
    start.elapsed()
}

#[test]
fn a_vip_fails_over_between_two_lb_nodes_and_the_client_follows() {
    if !is_root() {
        eprintln!("SKIP a_vip_fails_over_between_two_lb_nodes_and_the_client_follows: needs root (network namespaces)");
        return;
    }
    let dir = TestDir::new("lb-vip");
    let net = Net::create();
    let store = format!("http://{}:{}", net.host(254), free_port());
    let etcd = Etcd::start_at(&dir.join("store"), &store);
    let backend_addr: SocketAddr = format!("{}:0", net.host(254)).parse().unwrap();
    let backend = Backend::http_at("backend", backend_addr);
    let vip = net.host(100);
    let declared = listener(
        "http",
        8080,
        &[backend.addr],
        json!({"address": vip, "nodes": ["lb-a", "lb-b"]}),
    );
    etcd.ctl(&["put", &keys::lb_listener("web"), &declared.to_string()]);
    let url = format!("http://{vip}:8080/");

    // a starts first and takes the VIP; b then follows it.
    let mut a = Node::start(&net, &dir, "a", 1, &store, "1");
    wait_holder(&net, &etcd, &a, &vip, Duration::from_secs(10));
    let mut b = Node::start(&net, &dir, "b", 2, &store, "1");
    wait_for("b to see a as the holder", Duration::from_secs(10), || {
        let v = b.vip()?;
        (v["holder"] == "lb-a" && v["held"] == false).then_some(())
    });
    assert!(!net.has_address("b", &vip), "b must not have the VIP");
    let served = wait_for(
        "the client's request through a",
        Duration::from_secs(10),
        || net.client_get(&url).filter(|(code, _)| *code == 200),
    );
    assert!(served.1.contains("backend"), "{served:?}");
    assert_eq!(net.client_neighbour(&vip), Some(net.mac("a")));
    let a_vip = a.vip().unwrap();
    assert_eq!(
        (&a_vip["holder"], &a_vip["held"]),
        (&json!("lb-a"), &json!(true))
    );
    assert_eq!(a_vip["interface"], "eth0");
    let metric = format!("uc_lb_vip_held{{address=\"{vip}\"}} 1");
    assert!(a.metrics().contains(&metric), "{}", a.metrics());
    let status = etcd.get(&keys::lb_listener_status("lb-a", "web")).unwrap();
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["vip"]["holder"], "lb-a", "{status}");

    // kill -9 of the holder: b takes over within the TTL (plus the margin),
    // announces it, and the client's ARP entry and new connections follow.
    a.process.0.kill().unwrap();
    let _ = a.process.0.wait();
    let took = wait_holder(
        &net,
        &etcd,
        &b,
        &vip,
        Duration::from_secs(TTL) + MARGIN + Duration::from_secs(1),
    );
    eprintln!("takeover after kill -9: {took:?} (lease TTL {TTL} s)");
    assert!(took <= Duration::from_secs(TTL) + MARGIN, "took {took:?}");
    let b_mac = net.mac("b");
    wait_for(
        "the client's ARP entry to move to b",
        Duration::from_secs(3),
        || (net.client_neighbour(&vip).as_deref() == Some(b_mac.as_str())).then_some(()),
    );
    let served = wait_for(
        "the client's request through b",
        Duration::from_secs(5),
        || net.client_get(&url).filter(|(code, _)| *code == 200),
    );
    assert!(served.1.contains("backend"), "{served:?}");
    assert!(b.metrics().contains(&metric), "{}", b.metrics());

    // The killed a left its address up; a new run removes it and follows b.
    assert!(
        net.has_address("a", &vip),
        "kill -9 cannot remove the address"
    );
    a = Node::start(&net, &dir, "a", 1, &store, "2");
    wait_for(
        "a restarted to drop the stale VIP",
        Duration::from_secs(5),
        || (!net.has_address("a", &vip)).then_some(()),
    );
    wait_for("a restarted to follow b", Duration::from_secs(5), || {
        let v = a.vip()?;
        (v["holder"] == "lb-b" && v["held"] == false).then_some(())
    });

    // SIGTERM of the holder releases at once: a takes the VIP well within
    // the TTL, b's address is gone, and the client follows a again.
    let start = Instant::now();
    b.process.terminate(Duration::from_secs(6));
    assert!(!net.has_address("b", &vip), "b stopped but kept the VIP");
    wait_holder(&net, &etcd, &a, &vip, Duration::from_secs(TTL));
    let took = start.elapsed();
    eprintln!("takeover after SIGTERM: {took:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let a_mac = net.mac("a");
    wait_for(
        "the client's ARP entry to move back to a",
        Duration::from_secs(3),
        || (net.client_neighbour(&vip).as_deref() == Some(a_mac.as_str())).then_some(()),
    );
    let served = wait_for(
        "the client's request through a again",
        Duration::from_secs(5),
        || net.client_get(&url).filter(|(code, _)| *code == 200),
    );
    assert!(served.1.contains("backend"), "{served:?}");
    drop(b);
}
