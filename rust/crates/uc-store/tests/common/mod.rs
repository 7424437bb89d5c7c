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
        let dir = TestDir::new(test);
        let (a, b) = block();
        let members = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                ip: format!("127.{a}.{b}.{}", i + 1),
                dir: dir.join(format!("m{i}")),
                process: None,
            })
            .collect();
        let mut cluster = Cluster {
            kind,
            members,
            token: format!("{test}-token"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir,
        };
        for i in 0..size {
            cluster.spawn(i, "new");
        }
        cluster.wait_leader(Duration::from_secs(30));
        cluster
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
        let mut command = Command::new(binary);
        command
            .args(["--name", &member.name, "--data-dir"])
            .arg(&member.dir)
            .args(["--listen-client-urls", &member.client_url()])
            .args(["--advertise-client-urls", &member.client_url()])
            .args(["--listen-peer-urls", &member.peer_url()])
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

/// GET over HTTP/1.1; the body on 200, None otherwise.
pub fn http_get(ip: &str, port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr = format!("{ip}:{port}").parse().ok()?;
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}
