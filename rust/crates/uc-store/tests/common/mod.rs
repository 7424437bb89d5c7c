//! Multi-member clusters on loopback for the integration tests, of uc-store
//! or of a real etcd 3.4 (Debian's etcd-server): both take the same flags.
//! Each cluster gets its own 127.x.y.0/24 block, so members use etcd's
//! standard ports and no two tests (or test binaries) collide.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use uc_testkit::{KillOnDrop, TestDir};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    UcStore,
    Etcd,
}

pub struct Member {
    pub name: String,
    pub ip: String,
    pub dir: PathBuf,
    pub process: Option<KillOnDrop>,
    /// Listen for peers here instead of `peer_url()` (after a MemberUpdate).
    pub peer_listen: Option<String>,
}

impl Member {
    pub fn client_url(&self) -> String {
        format!("http://{}:2379", self.ip)
    }
    pub fn client_addr(&self) -> String {
        format!("{}:2379", self.ip)
    }
    pub fn peer_url(&self) -> String {
        format!("http://{}:2380", self.ip)
    }
    pub fn metrics(&self) -> String {
        format!("{}:2381", self.ip)
    }
}

pub struct Cluster {
    pub kind: Kind,
    pub members: Vec<Member>,
    pub token: String,
    pub extra: Vec<String>,
    dir: TestDir,
    /// With `start_partitionable`: each member in a network namespace.
    net: Option<Net>,
}

/// Members in network namespaces of their own, bridged to the test's
/// namespace (needs root): `isolate` cuts a member off from the other
/// members with blackhole routes on both sides, while its clients (the
/// test, on the bridge) still reach it; `heal` undoes it.
pub struct Net {
    tag: String,
    size: usize,
    subnet: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Net {
    /// None (the caller skips) when namespaces cannot be made here.
    fn create(size: usize, block: u32) -> Option<Net> {
        let tag = format!("{}{}", std::process::id() % 1_000_000, block % 1000);
        let net = Net {
            subnet: format!("10.213.{}", block % 250 + 1),
            tag,
            size,
        };
        let bridge = net.bridge();
        let mut ok = ip(&["link", "add", &bridge, "type", "bridge"])
            && ip(&[
                "addr",
                "add",
                &format!("{}.254/24", net.subnet),
                "dev",
                &bridge,
            ])
            && ip(&["link", "set", &bridge, "up"]);
        for i in 0..size {
            let ns = net.namespace(i);
            let veth = format!("ucv{}{i}", net.tag);
            ok = ok
                && ip(&["netns", "add", &ns])
                && ip(&[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ])
                && ip(&["link", "set", &veth, "master", &bridge, "up"])
                && ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{}/24", net.address(i)),
                    "dev",
                    "eth0",
                ])
                && ip(&["-n", &ns, "link", "set", "eth0", "up"])
                && ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        ok.then_some(net)
    }

    fn bridge(&self) -> String {
        format!("ucb{}", self.tag)
    }

    pub fn namespace(&self, i: usize) -> String {
        format!("ucstore-{}-{i}", self.tag)
    }

    pub fn address(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, i + 1)
    }

    fn routes(&self, i: usize, verb: &str) {
        for j in (0..self.size).filter(|j| *j != i) {
            let (to_j, to_i) = (
                format!("{}/32", self.address(j)),
                format!("{}/32", self.address(i)),
            );
            assert!(ip(&[
                "-n",
                &self.namespace(i),
                "route",
                verb,
                "blackhole",
                &to_j
            ]));
            assert!(ip(&[
                "-n",
                &self.namespace(j),
                "route",
                verb,
                "blackhole",
                &to_i
            ]));
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.size {
            ip(&["netns", "del", &self.namespace(i)]);
        }
        ip(&["link", "del", &self.bridge()]);
    }
}

static NEXT_BLOCK: AtomicU32 = AtomicU32::new(0);

fn block() -> (u32, u32) {
    let n = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    (20 + pid % 200, (pid / 200 + n) % 250 + 1)
}

impl Cluster {
    /// Starts `size` members and waits until they agree on a leader.
    pub fn start(kind: Kind, size: usize, test: &str, extra: &[&str]) -> Cluster {
        let mut cluster = Cluster::prepare(kind, size, test, extra);
        cluster.start_all();
        cluster
    }

    /// Like `start`, each member in a network namespace of its own (see
    /// `Net`); None where namespaces cannot be made (not root).
    pub fn start_partitionable(
        kind: Kind,
        size: usize,
        test: &str,
        extra: &[&str],
    ) -> Option<Cluster> {
        let (_, b) = block();
        let net = Net::create(size, b)?;
        let subnet = net.subnet.clone();
        let mut cluster = Cluster::new(kind, size, test, extra, Some(net), |i| {
            format!("{subnet}.{}", i + 1)
        });
        cluster.start_all();
        Some(cluster)
    }

    /// Like `start`, without starting anything: the data dirs can be
    /// prepared first (`start_all` starts the members).
    pub fn prepare(kind: Kind, size: usize, test: &str, extra: &[&str]) -> Cluster {
        let (a, b) = block();
        Cluster::new(kind, size, test, extra, None, |i| {
            format!("127.{a}.{b}.{}", i + 1)
        })
    }

    /// Starts every member of a new cluster and waits for its leader.
    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.spawn(i, "new");
        }
        self.wait_leader(Duration::from_secs(30));
    }

    /// A directory of the test's own, removed with the cluster.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn new(
        kind: Kind,
        size: usize,
        test: &str,
        extra: &[&str],
        net: Option<Net>,
        ip: impl Fn(usize) -> String,
    ) -> Cluster {
        let dir = TestDir::new(test);
        let members = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                ip: ip(i),
                dir: dir.join(format!("m{i}")),
                process: None,
                peer_listen: None,
            })
            .collect();
        Cluster {
            kind,
            members,
            token: format!("{test}-token"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir,
            net,
        }
    }

    /// Cuts member `i` off from the other members (not from clients).
    pub fn isolate(&self, i: usize) {
        self.net
            .as_ref()
            .expect("start_partitionable")
            .routes(i, "add");
    }

    pub fn heal(&self, i: usize) {
        self.net
            .as_ref()
            .expect("start_partitionable")
            .routes(i, "del");
    }

    pub fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.members[i].name))
    }

    pub fn spawn(&mut self, i: usize, state: &str) {
        let initial = self.initial_cluster();
        let log_path = self.log_path(i);
        let member = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let binary = match self.kind {
            Kind::UcStore => env!("CARGO_BIN_EXE_uc-store").to_string(),
            Kind::Etcd => "etcd".to_string(),
        };
        let mut command = match &self.net {
            Some(net) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &net.namespace(i), &binary]);
                c
            }
            None => Command::new(binary),
        };
        command
            .args(["--name", &member.name, "--data-dir"])
            .arg(&member.dir)
            .args(["--listen-client-urls", &member.client_url()])
            .args(["--advertise-client-urls", &member.client_url()])
            .args([
                "--listen-peer-urls",
                member.peer_listen.as_deref().unwrap_or(&member.peer_url()),
            ])
            .args(["--initial-advertise-peer-urls", &member.peer_url()])
            .args([
                "--listen-metrics-urls",
                &format!("http://{}", member.metrics()),
            ])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log);
        if self.kind == Kind::Etcd {
            command.args(["--log-level", "warn"]);
        }
        let child = command.spawn().expect("start the store");
        self.members[i].process = Some(KillOnDrop(child));
    }

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        self.members[i].process = None;
    }

    /// SIGTERM, and waits for the exit; returns whether it exited cleanly.
    pub fn terminate(&mut self, i: usize) -> bool {
        let Some(mut process) = self.members[i].process.take() else {
            return false;
        };
        let pid = process.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = process.0.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn restart(&mut self, i: usize) {
        self.spawn(i, "new");
    }

    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .filter(|m| m.process.is_some())
            .map(|m| m.client_url())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn metrics_text(&self, i: usize) -> Option<String> {
        let addr = self.members[i].metrics();
        let port = 2381;
        let ip = addr.split(':').next().unwrap();
        http_get(ip, port, "/metrics")
    }

    /// The index of the member that says it leads, if exactly one does.
    pub fn leader(&self) -> Option<usize> {
        let leaders: Vec<usize> = (0..self.members.len())
            .filter(|i| self.members[*i].process.is_some())
            .filter(|i| {
                self.metrics_text(*i)
                    .is_some_and(|m| m.lines().any(|l| l.ends_with("_is_leader 1")))
            })
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    pub fn wait_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader() {
                let healthy = (0..self.members.len())
                    .filter(|i| self.members[*i].process.is_some())
                    .all(|i| {
                        let ip = self.members[i].ip.clone();
                        http_get(&ip, 2381, "/health").is_some_and(|b| b.contains("true"))
                    });
                if healthy {
                    return leader;
                }
            }
            assert!(Instant::now() < deadline, "no leader within {timeout:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs etcdctl 3.4 against the running members.
    pub fn ctl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        ctl(&self.endpoints(), args, stdin)
    }
}

pub fn ctl(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoints, "--command-timeout", "10s"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl (Debian's etcd-client)");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// GET over HTTP/1.1 (uc-http); the body on 200, None otherwise.
pub fn http_get(ip: &str, port: u16, path: &str) -> Option<String> {
    uc_testkit::get_ok(&format!("http://{ip}:{port}{path}"))
}
