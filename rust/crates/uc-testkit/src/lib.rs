//! What the integration tests of several crates share: a real etcd (Debian's
//! etcd-server, the reference uc-store must match) on loopback ports, free
//! ports, and HTTP requests (through uc-http). Test-only code: panics are its
//! error path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod store;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A fresh directory for one test run (per process, so concurrent runs of
/// the suite do not share chroot stores, keys or logs), removed on drop.
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        TestDir(dir)
    }
}

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        // Chroot Nix stores are read-only inside.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (and reaped) when the test ends, however it ends.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Starts `command` (a daemon under test); panics naming the program if
    /// it cannot start.
    pub fn spawn(command: &mut Command) -> KillOnDrop {
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("start {:?}: {err}", command.get_program()));
        KillOnDrop(child)
    }

    /// SIGTERM, as systemd stops a daemon, then waits up to `timeout` for
    /// it to exit; panics if it cannot be signalled or is still running then.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.0.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(killed.success(), "kill -TERM {pid}: {killed}");
        wait_for(
            &format!("process {pid} to exit after SIGTERM"),
            timeout,
            || self.0.try_wait().expect("wait for the process"),
        )
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; tests bind it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A single-member etcd on loopback, killed on drop (`UC_TEST_STORE` names
/// another binary with etcd's flags, e.g. uc-store, to use instead).
pub struct Etcd {
    child: Child,
    pub endpoint: String,
}

impl Etcd {
    /// Starts etcd with its data in `dir` (its log in `dir.log`) and waits
    /// until it answers.
    pub fn start(dir: &Path) -> Etcd {
        Etcd::start_at(dir, &format!("http://127.0.0.1:{}", free_port()))
    }

    /// `start` answering on `endpoint`: e.g. a new, empty store where an
    /// old one was, as when a store comes back without its data.
    pub fn start_at(dir: &Path, endpoint: &str) -> Etcd {
        let log = std::fs::File::create(dir.with_extension("log")).expect("etcd log file");
        let endpoint = endpoint.to_owned();
        let peer = format!("http://127.0.0.1:{}", free_port());
        // UC_TEST_STORE: another binary taking etcd's flags (uc-store) to
        // run the same tests against.
        let binary = std::env::var("UC_TEST_STORE").unwrap_or_else(|_| "etcd".into());
        let child = Command::new(binary)
            .args(["--name", "t1", "--data-dir"])
            .arg(dir)
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &format!("t1={peer}"),
                "--log-level",
                "error",
            ])
            .stderr(log)
            .spawn()
            .expect("start etcd (install Debian's etcd-server)");
        let etcd = Etcd { child, endpoint };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !etcd.ctl_status(&["endpoint", "health"]).0 {
            assert!(Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    fn ctl_status(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint])
            .args(args)
            .output()
            .expect("run etcdctl (install Debian's etcd-client)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Runs the real etcdctl against this etcd; panics on failure.
    pub fn ctl(&self, args: &[&str]) -> String {
        let (ok, out) = self.ctl_status(args);
        assert!(ok, "etcdctl {args:?} failed");
        out
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        let out = self.ctl(&["get", "--print-value-only", key]);
        let value = out.trim_end_matches('\n');
        (!value.is_empty()).then(|| value.to_owned())
    }

    /// A gRPC client of this etcd.
    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint.as_str()], None)
            .await
            .expect("connect to etcd")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (a JSON `body`, maybe empty);
/// (status, body).
pub fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let method = uc_http::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let response = uc_http::Request::new(method.clone(), format!("http://127.0.0.1:{port}{path}"))
        .json(body.to_owned())
        .timeout(Duration::from_secs(30))
        .send_blocking()
        .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
    (response.status.as_u16(), response.text())
}

/// Polls `f` every 100 ms until it returns Some, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = f() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET `url` over HTTP/1.1 (uc-http) with short timeouts (0.5 s to connect,
/// 2 s in all): the body on 200, None otherwise.
pub fn get_ok(url: &str) -> Option<String> {
    let response = uc_http::Request::get(url)
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .send_blocking()
        .ok()?;
    (response.status == uc_http::StatusCode::OK).then(|| response.text())
}

/// Waits up to 20 s until something accepts TCP connections on
/// 127.0.0.1:`port`: the daemon `what` the test started has bound its
/// listener.
pub fn wait_for_port(what: &str, port: u16) {
    wait_for(
        &format!("{what} to listen on 127.0.0.1:{port}"),
        Duration::from_secs(20),
        || TcpStream::connect(("127.0.0.1", port)).ok(),
    );
}

/// Runs `command` (a daemon refusing to start) to its end; asserts that it
/// exited with 1 and gives back its stderr.
pub fn exit_1_stderr(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("run {:?}: {err}", command.get_program()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {stderr}");
    stderr
}

/// Asserts that `text`, a daemon's `/metrics` (OpenMetrics), holds each of
/// `lines` (so dashboards keep working) and ends with `# EOF`.
pub fn assert_metrics(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
}

/// Kills (SIGKILL) the process group of every instance a node-agent
/// recorded under `state_dir`: instances outlive their agent by design, and
/// a test must not leave any behind.
pub fn kill_node_agent_instances(state_dir: &Path) {
    let records = state_dir.join("instances");
    for entry in std::fs::read_dir(records).into_iter().flatten().flatten() {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.path()).unwrap_or_default())
                .unwrap_or_default();
        if let Some(pid) = record["pid"].as_u64().filter(|p| *p > 1) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// xorshift64*: a reproducible pseudo-random sequence from a seed, for
/// generated fixtures and fuzz-like tests (the same zone, packets or tokens
/// on every run), without a dependency.
pub struct Xorshift(pub u64);

impl Xorshift {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
