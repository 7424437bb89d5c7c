//! What the VIP and BGP tests share: network namespaces joined by a bridge
//! (in a namespace of its own) on 198.18.M.0/24 and fd00:18:M::/64, with
//! the root namespace at 198.18.M.254 through a veth (where the store and the backend listen), all
//! removed on drop; and uc-lb nodes run inside them from flags.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use uc_testkit::{wait_for, Etcd, KillOnDrop, TestDir};
use uc_types::keys;

use crate::common::curl;

/// The VIP lease TTL the nodes run with.
pub const TTL: u64 = 5;

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

pub fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("run ip")
}

pub fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces, the bridge and the root veth.
pub struct Net {
    prefix: String,
    names: Vec<String>,
    /// The first three octets of the test subnet.
    pub subnet: String,
    /// The IPv6 subnet's first three groups.
    subnet6: String,
}

impl Net {
    /// Namespaces `hosts` (name, last octet or group of its eth0
    /// addresses) on a bridge; `tag` (one letter) and `index` (0 to 2) keep
    /// the tests of one process apart.
    pub fn create(tag: &str, index: u32, hosts: &[(&str, u8)]) -> Net {
        let id = std::process::id() % 100_000;
        let third = (id * 3 + index) % 250;
        let net = Net {
            prefix: format!("uc{tag}{id}"),
            names: hosts.iter().map(|(n, _)| (*n).to_owned()).collect(),
            subnet: format!("198.18.{third}"),
            subnet6: format!("fd00:18:{third}"),
        };
        net.cleanup();
        let sw = net.ns("sw");
        ip_ok(&["netns", "add", &sw]);
        ip_ok(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip_ok(&["-n", &sw, "link", "set", "br0", "up"]);
        for (name, host) in hosts {
            let ns = net.ns(name);
            ip_ok(&["netns", "add", &ns]);
            ip_ok(&["-n", &ns, "link", "set", "lo", "up"]);
            let port = format!("{name}0");
            ip_ok(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            ip_ok(&["-n", &sw, "link", "set", &port, "master", "br0", "up"]);
            let address = format!("{}/24", net.host(*host));
            ip_ok(&["-n", &ns, "addr", "add", &address, "dev", "eth0"]);
            let address6 = format!("{}/64", net.host6(u16::from(*host)));
            ip_ok(&["-n", &ns, "addr", "add", &address6, "dev", "eth0", "nodad"]);
            ip_ok(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        let root = net.root_veth();
        ip_ok(&[
            "link", "add", &root, "type", "veth", "peer", "name", "root", "netns", &sw,
        ]);
        ip_ok(&["-n", &sw, "link", "set", "root", "master", "br0", "up"]);
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

    pub fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn root_veth(&self) -> String {
        format!("{}r", self.prefix)
    }

    pub fn host(&self, n: u8) -> String {
        format!("{}.{n}", self.subnet)
    }

    pub fn host6(&self, n: u16) -> String {
        format!("{}::{n:x}", self.subnet6)
    }

    fn cleanup(&self) {
        for name in self.names.iter().map(String::as_str).chain(["sw"]) {
            let _ = ip(&["netns", "del", &self.ns(name)]);
        }
        let _ = ip(&["link", "del", &self.root_veth()]);
    }

    /// Whether `address` is on an interface of namespace `name`.
    pub fn has_address(&self, name: &str, address: &str) -> bool {
        let out = ip(&["-n", &self.ns(name), "-o", "addr", "show"]);
        String::from_utf8_lossy(&out.stdout).contains(&format!(" {address}/"))
    }

    pub fn mac(&self, name: &str) -> String {
        let out = ip(&["-n", &self.ns(name), "-o", "link", "show", "eth0"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let after = text.split("link/ether ").nth(1).expect("eth0's MAC");
        after.split_whitespace().next().unwrap().to_owned()
    }

    /// The MAC namespace `name`'s neighbour cache has for `address`.
    pub fn neighbour(&self, name: &str, address: &str) -> Option<String> {
        let out = ip(&[
            "-n",
            &self.ns(name),
            "neigh",
            "show",
            address,
            "dev",
            "eth0",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let after = text.split("lladdr ").nth(1)?;
        Some(after.split_whitespace().next()?.to_owned())
    }

    /// An HTTP GET from namespace `name`: (code, body).
    pub fn get(&self, name: &str, url: &str) -> Option<(u16, String)> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(name),
                "curl",
                "-s",
                "-g",
                "-m",
                "2",
            ])
            .args(["-w", "\n%{http_code}", url])
            .stderr(Stdio::null())
            .output()
            .expect("run curl in a namespace");
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

/// A uc-lb named `lb-<ns>` running in namespace `ns`.
pub struct Node {
    pub name: String,
    pub ns: String,
    pub http: String,
    pub process: KillOnDrop,
}

impl Node {
    /// Starts it (its log in `dir/lb-<ns>-<run>.log`) and waits for /health.
    pub fn start(net: &Net, dir: &TestDir, ns: &str, host: u8, store: &str, run: &str) -> Node {
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

    pub fn health(&self) -> Option<Value> {
        let (_, body) = curl(&["-m", "2", &format!("http://{}/health", self.http)])?;
        serde_json::from_str(&body).ok()
    }

    pub fn metrics(&self) -> String {
        curl(&["-m", "2", &format!("http://{}/metrics", self.http)])
            .unwrap()
            .1
    }

    /// The VIP as this node's /health shows it on listener `listener`.
    pub fn vip(&self, listener: &str) -> Option<Value> {
        let vip = self.health()?["listeners"][listener]["vip"].clone();
        (!vip.is_null()).then_some(vip)
    }

    /// Waits until this node holds `vip` (address up, store key naming
    /// it); how long that took.
    pub fn wait_holding(&self, net: &Net, etcd: &Etcd, vip: &str, within: Duration) -> Duration {
        let start = Instant::now();
        let key = keys::lb_vip(vip.parse().unwrap());
        wait_for(
            &format!("{} to hold the VIP {vip}", self.name),
            within,
            || {
                (net.has_address(&self.ns, vip) && etcd.get(&key).as_deref() == Some(&self.name))
                    .then_some(())
            },
        );
        start.elapsed()
    }
}
