//! What uc-lb's integration tests share: uc-lb started from flags against
//! a real etcd, listeners written as the deployer writes them, small
//! backends on loopback (HTTP answering their name and the forwarded
//! headers, UDP echo), and requests through curl or a raw socket.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uc_testkit::{free_port, wait_for, Etcd, KillOnDrop, TestDir};
use uc_types::keys;

pub struct Lb {
    pub etcd: Etcd,
    /// The node the statuses are written under (`--node`, else `local`).
    pub node: String,
    pub http: u16,
    _process: KillOnDrop,
    pub dir: TestDir,
}

impl Lb {
    /// etcd and a uc-lb run from flags (`extra` added), answering /health.
    pub fn start(name: &str, extra: &[&str]) -> Lb {
        let dir = TestDir::new(name);
        let etcd = Etcd::start(&dir.join("store"));
        let http = free_port();
        let log = std::fs::File::create(dir.join("uc-lb.log")).unwrap();
        let process = Command::new(env!("CARGO_BIN_EXE_uc-lb"))
            .args([
                "--store",
                &etcd.endpoint,
                "--http",
                &format!("127.0.0.1:{http}"),
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stderr(log)
            .spawn()
            .expect("start uc-lb");
        let node = extra
            .iter()
            .position(|a| *a == "--node")
            .map_or("local", |i| extra[i + 1])
            .to_owned();
        let lb = Lb {
            etcd,
            node,
            http,
            _process: KillOnDrop(process),
            dir,
        };
        wait_for("uc-lb's /health", Duration::from_secs(10), || lb.health());
        lb
    }

    /// (status code, body) of /health, or None before it answers.
    pub fn health(&self) -> Option<(u16, Value)> {
        let (code, body) = curl(&["-m", "2", &format!("http://127.0.0.1:{}/health", self.http)])?;
        Some((code, serde_json::from_str(&body).ok()?))
    }

    pub fn metrics(&self) -> String {
        curl(&[
            "-m",
            "2",
            &format!("http://127.0.0.1:{}/metrics", self.http),
        ])
        .unwrap()
        .1
    }

    /// Writes listener `name` as the deployer does.
    pub fn put_listener(&self, name: &str, listener: &Value) {
        self.etcd
            .ctl(&["put", &keys::lb_listener(name), &listener.to_string()]);
    }

    /// The status this uc-lb wrote for `listener`.
    pub fn status(&self, listener: &str) -> Option<Value> {
        let value = self
            .etcd
            .get(&keys::lb_listener_status(&self.node, listener))?;
        serde_json::from_str(&value).ok()
    }

    /// Waits until the status of `listener` shows `backend` in `state`.
    pub fn wait_backend(
        &self,
        listener: &str,
        backend: SocketAddr,
        state: &str,
        within: Duration,
    ) -> Duration {
        let started = Instant::now();
        wait_for(
            &format!("{backend} {state} in {listener}'s status"),
            within,
            || {
                let status = self.status(listener)?;
                let found = status["backends"].as_array()?.iter().any(|b| {
                    b["address"] == json!(backend.to_string()) && b["state"] == json!(state)
                });
                found.then_some(())
            },
        );
        started.elapsed()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("uc-lb.log")).unwrap_or_default()
    }
}

/// A listener declaration as the manifest renders it.
pub fn listener(protocol: &str, port: u16, endpoints: &[SocketAddr], extra: Value) -> Value {
    let endpoints: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    let mut value = json!({
        "protocol": protocol,
        "port": port,
        "address": "127.0.0.1",
        "nodes": ["edge1"],
        "balance": "round-robin",
        "backends": {"service": null, "servicePort": null, "endpoints": endpoints},
        "healthCheck": {"type": "tcp", "path": "/", "intervalSeconds": 1, "timeoutSeconds": 1, "rise": 2, "fall": 2},
        "tls": {"certificateFile": null, "keyFile": null}
    });
    for (k, v) in extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    value
}

/// `curl -s` with `args`; (status code, body), None when curl fails.
pub fn curl(args: &[&str]) -> Option<(u16, String)> {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("run curl");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.trim().parse().ok()?, body.to_owned()))
}

/// An HTTP/1.1 backend on 127.0.0.1 answering `<name> xff=<X-Forwarded-For>
/// proto=<X-Forwarded-Proto>` with keep-alive; `/slow` never answers, and
/// `/close` closes without answering. Stops listening when dropped or
/// `stop`ped (its open connections end too).
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    stop: Arc<AtomicBool>,
    pub requests: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    pub fn http(name: &str) -> Backend {
        Backend::http_at(name, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn http_at(name: &str, addr: SocketAddr) -> Backend {
        Backend::try_http_at(name, addr).unwrap()
    }

    /// As [`Backend::http_at`], with the bind's error for a caller that can
    /// pick another address.
    pub fn try_http_at(name: &str, addr: SocketAddr) -> std::io::Result<Backend> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let (stop2, requests2, name2) = (stop.clone(), requests.clone(), name.to_owned());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (stop3, requests3, name3) =
                            (stop2.clone(), requests2.clone(), name2.clone());
                        std::thread::spawn(move || serve_http(stream, &name3, &stop3, &requests3));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Backend {
            addr,
            name: name.to_owned(),
            stop,
            requests,
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_http(stream: TcpStream, name: &str, stop: &AtomicBool, requests: &AtomicU64) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut head = Vec::new();
        let mut line = String::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => head.push(line.trim_end().to_owned()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => return,
            }
        }
        let header = |name: &str| {
            head.iter()
                .find_map(|h| {
                    h.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_owned())
                })
                .unwrap_or_default()
        };
        let length: usize = header("content-length").parse().unwrap_or(0);
        let mut body = vec![0u8; length];
        let _ = reader.read_exact(&mut body);
        let target = head
            .first()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/")
            .to_owned();
        requests.fetch_add(1, Ordering::Relaxed);
        match target.as_str() {
            "/slow" => {
                std::thread::sleep(Duration::from_secs(5));
                return;
            }
            "/close" => return,
            _ => {}
        }
        let text = format!(
            "{name} xff={} proto={}",
            header("x-forwarded-for"),
            header("x-forwarded-proto")
        );
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A UDP echo backend answering `<name>:<datagram>`, with a TCP listener
/// on the same port for the TCP probe.
pub struct UdpEcho {
    pub addr: SocketAddr,
    _tcp: Backend,
}

impl UdpEcho {
    pub fn start(name: &str) -> UdpEcho {
        // The TCP twin (what the health check connects to) takes the UDP
        // socket's port number, which another test may hold over TCP: then
        // try another port.
        let (socket, addr, tcp) = (0..20)
            .find_map(|_| {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                let addr = socket.local_addr().unwrap();
                let tcp = Backend::try_http_at(name, addr).ok()?;
                Some((socket, addr, tcp))
            })
            .expect("a port free for both UDP and TCP");
        let name = name.to_owned();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                let reply = format!("{name}:{}", String::from_utf8_lossy(&buf[..n]));
                let _ = socket.send_to(reply.as_bytes(), peer);
            }
        });
        UdpEcho { addr, _tcp: tcp }
    }
}

/// One HTTP/1.1 GET on an open keep-alive connection; (status, body).
pub fn get(stream: &mut TcpStream, path: &str) -> std::io::Result<(u16, String)> {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: lb.test\r\n\r\n").as_bytes())?;
    read_response(stream)
}

pub fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before a response",
            ));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// A free TCP port on 127.0.0.1 for a listener.
pub fn port() -> u16 {
    free_port()
}

/// A raw TCP backend on 127.0.0.1 that runs `answer` on each connection
/// (in a thread of its own) until dropped; for PROXY-protocol and upgrade
/// backends that the HTTP one above does not speak.
pub struct RawBackend {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl RawBackend {
    pub fn start(answer: fn(TcpStream)) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .unwrap();
                        std::thread::spawn(move || answer(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RawBackend { addr, stop }
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads an HTTP head (up to the blank line) byte by byte.
pub fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `<ca>.pem` and a server certificate for lb.test and 127.0.0.1
/// signed by it, as `<leaf>.pem` and `<leaf>.key`.
pub fn certificate(dir: &Path, ca: &str, leaf: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_key = format!("{ca}.key");
    let ca_pem = format!("{ca}.pem");
    if !dir.join(&ca_pem).exists() {
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout",
            &ca_key,
            "-out",
            &ca_pem,
            "-days",
            "1",
            "-subj",
            "/CN=uc-lb test CA",
        ]);
        args.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        openssl(dir, &args);
    }
    let (key, csr, pem) = (
        format!("{leaf}.key"),
        format!("{leaf}.csr"),
        format!("{leaf}.pem"),
    );
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=lb.test"]);
    openssl(dir, &args);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:lb.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );
}
