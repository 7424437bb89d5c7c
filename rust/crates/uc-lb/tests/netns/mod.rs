//! What the VIP and BGP tests share: network namespaces joined by a bridge
//! (in a namespace of its own) on 198.18.M.0/24 and fd00:18:M::/64, with
//! the root namespace at 198.18.M.254 through a veth (where the store and the backend listen), all
//! removed on drop; and uc-lb nodes run inside them from flags.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uc_testkit::{free_port, wait_for, Etcd, KillOnDrop, TestDir};
use uc_types::keys;

use crate::common::{curl, listener, Backend};

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

/// A test's namespaces; the store and an HTTP backend on the root veth
/// (.254); the `http` listener `web` on port 8080 of `vip`, served by the
/// uc-lb nodes `nodes`.
pub struct Scene {
    // Dropped in this order: what runs in the namespaces before them.
    backend: Backend,
    etcd: Option<Etcd>,
    pub net: Net,
    pub dir: TestDir,
    pub store: String,
    pub vip: String,
    /// `http://<vip>:8080/`.
    pub url: String,
    nodes: Vec<String>,
}

impl Scene {
    /// `test` names the test directory; `tag`, `index` and `hosts` as for
    /// `Net::create`; `vip` picks the VIP among the subnet's addresses.
    pub fn new(
        test: &str,
        (tag, index): (&str, u32),
        hosts: &[(&str, u8)],
        vip: impl Fn(&Net) -> String,
        nodes: &[&str],
    ) -> Scene {
        let dir = TestDir::new(test);
        let net = Net::create(tag, index, hosts);
        let store = format!("http://{}:{}", net.host(254), free_port());
        let backend = Backend::http_at("backend", format!("{}:0", net.host(254)).parse().unwrap());
        let vip = vip(&net);
        let url = if vip.contains(':') {
            format!("http://[{vip}]:8080/")
        } else {
            format!("http://{vip}:8080/")
        };
        let mut scene = Scene {
            backend,
            etcd: None,
            net,
            dir,
            store,
            vip,
            url,
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
        };
        scene.start_store("store");
        scene
    }

    pub fn etcd(&self) -> &Etcd {
        self.etcd.as_ref().expect("the store is running")
    }

    /// Kills the store.
    pub fn stop_store(&mut self) {
        self.etcd = None;
    }

    /// A new, empty store (data in `dir/<data>`) where the old one was,
    /// with the listener declared.
    pub fn start_store(&mut self, data: &str) {
        let etcd = Etcd::start_at(&self.dir.join(data), &self.store);
        let declared = listener(
            "http",
            8080,
            &[self.backend.addr],
            json!({"address": self.vip, "nodes": self.nodes}),
        );
        etcd.ctl(&["put", &keys::lb_listener("web"), &declared.to_string()]);
        self.etcd = Some(etcd);
    }

    /// uc-lb `lb-<ns>` in namespace `ns` (eth0 at .`host`); `run` tells
    /// its log from an earlier run's.
    pub fn node(&self, ns: &str, host: u8, run: &str) -> Node {
        Node::start(&self.net, &self.dir, ns, host, &self.store, run)
    }

    /// Waits until a request from namespace `client` to the VIP is served
    /// by the backend.
    pub fn served_from(&self, client: &str, what: &str) {
        let served = wait_for(what, Duration::from_secs(10), || {
            self.net
                .get(client, &self.url)
                .filter(|(code, _)| *code == 200)
        });
        assert!(served.1.contains("backend"), "{what}: {served:?}");
    }

    /// Waits until namespace `client` has `node`'s MAC for the VIP.
    pub fn wait_neighbour(&self, client: &str, node: &Node) {
        let mac = self.net.mac(&node.ns);
        wait_for(
            &format!(
                "{client}'s neighbour entry for the VIP to be {}'s",
                node.name
            ),
            Duration::from_secs(3),
            || {
                (self.net.neighbour(client, &self.vip).as_deref() == Some(mac.as_str()))
                    .then_some(())
            },
        );
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

    /// Waits until this node holds the scene's VIP (address up, store key
    /// naming it); how long that took.
    pub fn wait_holding(&self, scene: &Scene, within: Duration) -> Duration {
        let start = Instant::now();
        let key = keys::lb_vip(scene.vip.parse().unwrap());
        wait_for(&format!("{} to hold the VIP", self.name), within, || {
            let up = scene.net.has_address(&self.ns, &scene.vip);
            (up && scene.etcd().get(&key).as_deref() == Some(&self.name)).then_some(())
        });
        start.elapsed()
    }

    /// Waits until this node's /health names `holder` as the VIP's.
    pub fn wait_following(&self, holder: &str) {
        wait_for(
            &format!("{} to see {holder} holding the VIP", self.name),
            Duration::from_secs(10),
            || {
                let v = self.vip("web")?;
                (v["holder"] == holder && v["held"] == false).then_some(())
            },
        );
    }

    pub fn kill(&mut self) {
        self.process.0.kill().unwrap();
        let _ = self.process.0.wait();
    }
}
