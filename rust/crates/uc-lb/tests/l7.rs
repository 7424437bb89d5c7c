//! uc-lb's HTTP and HTTPS listeners, through the real binary against
//! etcd, with curl as the client: balancing with X-Forwarded-For/-Proto
//! over HTTP/1.1 and HTTP/2; TLS verified by curl against a CA made here
//! with openssl, and a new certificate picked up without a restart;
//! uc-lb's own 502/503/504; retries of idempotent requests on connect
//! failure; a listener changed under load without a failed request;
//! malformed, slow and silent clients cut off by the client timeout (the
//! daemon's, or the listener's own); requests routed by host and path;
//! an HTTP upgrade (WebSocket's handshake) passed through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{certificate, curl, get, listener, port, read_head, Backend, Lb, RawBackend};
use serde_json::json;

#[test]
fn http_balances_with_forwarded_headers_over_h1_and_h2() {
    let lb = Lb::start("uc-lb-http", &[]);
    let (a, b) = (Backend::http("a"), Backend::http("b"));
    let p = port();
    let health = json!({"healthCheck": {"type": "http", "path": "/health", "intervalSeconds": 1, "timeoutSeconds": 1, "rise": 1, "fall": 2}});
    lb.put_listener("web", &listener("http", p, &[a.addr, b.addr], health));
    lb.wait_backend("web", a.addr, "up", Duration::from_secs(5));
    lb.wait_backend("web", b.addr, "up", Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{p}/");
    let mut names = Vec::new();
    for _ in 0..4 {
        let (code, body) = curl(&["-m", "5", &url]).unwrap();
        assert_eq!(code, 200);
        assert!(body.ends_with(" xff=127.0.0.1 proto=http"), "{body}");
        names.push(body.split_whitespace().next().unwrap().to_owned());
    }
    names.sort();
    assert_eq!(names, ["a", "a", "b", "b"]);
    let (code, version) = curl(&[
        "-m",
        "5",
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}\n%{http_code}",
        &url,
    ])
    .unwrap();
    assert_eq!((code, version.trim()), (200, "2"));
    // An X-Forwarded-For from the client is kept and appended to.
    let (_, body) = curl(&["-m", "5", "-H", "X-Forwarded-For: 192.0.2.1", &url]).unwrap();
    assert!(body.contains("xff=192.0.2.1, 127.0.0.1"), "{body}");
    let metrics = lb.metrics();
    assert!(
        metrics.contains("uc_lb_requests_total{listener=\"web\",code=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("uc_lb_request_duration_seconds_count{listener=\"web\"}"),
        "{metrics}"
    );
    for direction in ["in", "out"] {
        let line = format!(
            "uc_lb_bytes_total{{listener=\"web\",backend=\"{}\",direction=\"{direction}\"}}",
            a.addr
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    let latency = format!(
        "uc_lb_backend_latency_seconds_count{{listener=\"web\",backend=\"{}\"}}",
        b.addr
    );
    assert!(metrics.contains(&latency), "{latency} in\n{metrics}");
}

#[test]
fn https_terminates_with_a_verified_chain_and_reloads_its_certificate() {
    let lb = Lb::start("uc-lb-https", &[]);
    let tls = lb.dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    certificate(&tls, "ca1", "one");
    std::fs::copy(tls.join("one.pem"), tls.join("server.pem")).unwrap();
    std::fs::copy(tls.join("one.key"), tls.join("server.key")).unwrap();
    let a = Backend::http("a");
    let p = port();
    let files =
        json!({"certificateFile": tls.join("server.pem"), "keyFile": tls.join("server.key")});
    lb.put_listener(
        "secure",
        &listener("https", p, &[a.addr], json!({"tls": files})),
    );
    lb.wait_backend("secure", a.addr, "up", Duration::from_secs(5));
    let resolve = format!("lb.test:{p}:127.0.0.1");
    let url = format!("https://lb.test:{p}/");
    let with_ca = |ca: &str, extra: &[&str]| {
        let cacert = tls.join(ca);
        let mut args = vec![
            "-m",
            "5",
            "--cacert",
            cacert.to_str().unwrap(),
            "--resolve",
            &resolve,
        ];
        args.extend(extra);
        args.push(&url);
        curl(&args)
    };
    let (code, body) = with_ca("ca1.pem", &[]).expect("curl verifies the chain against ca1");
    assert_eq!((code, body.as_str()), (200, "a xff=127.0.0.1 proto=https"));
    let (_, version) = with_ca(
        "ca1.pem",
        &[
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}\n%{http_code}",
        ],
    )
    .unwrap();
    assert_eq!(version.trim(), "2", "h2 by ALPN");
    certificate(&tls, "ca2", "two");
    assert!(
        with_ca("ca2.pem", &[]).is_none(),
        "ca2 does not verify the first certificate"
    );
    // Replace the files (as a secret rotation does): served within a couple of seconds.
    std::fs::copy(tls.join("two.key"), tls.join("server.key.new")).unwrap();
    std::fs::copy(tls.join("two.pem"), tls.join("server.pem.new")).unwrap();
    std::fs::rename(tls.join("server.key.new"), tls.join("server.key")).unwrap();
    std::fs::rename(tls.join("server.pem.new"), tls.join("server.pem")).unwrap();
    let started = Instant::now();
    uc_testkit::wait_for("the new certificate", Duration::from_secs(4), || {
        with_ca("ca2.pem", &[])
    });
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "reloaded after {:?}",
        started.elapsed()
    );
    assert!(with_ca("ca1.pem", &[]).is_none(), "the old chain is gone");
    assert!(lb.log().contains("TLS certificate reloaded"));
}

#[test]
fn errors_are_uc_lbs_own_and_idempotent_requests_are_retried() {
    let lb = Lb::start("uc-lb-errors", &["--response-timeout", "1"]);
    let (mut a, b) = (Backend::http("a"), Backend::http("b"));
    let (empty, p) = (port(), port());
    lb.put_listener("none", &listener("http", empty, &[], json!({})));
    // Probes every 5 s, fall 3: a dead backend stays in rotation a while.
    let slow_health = json!({"healthCheck": {"type": "tcp", "path": "/", "intervalSeconds": 5, "timeoutSeconds": 1, "rise": 1, "fall": 3}});
    lb.put_listener("web", &listener("http", p, &[a.addr, b.addr], slow_health));
    lb.wait_backend("web", a.addr, "up", Duration::from_secs(5));
    lb.wait_backend("web", b.addr, "up", Duration::from_secs(5));
    let (code, body) = uc_testkit::wait_for("the empty listener", Duration::from_secs(5), || {
        curl(&["-m", "5", &format!("http://127.0.0.1:{empty}/")])
    });
    assert_eq!(
        (code, body.trim()),
        (503, "uc-lb: no healthy backend for listener none")
    );
    let url = |path: &str| format!("http://127.0.0.1:{p}{path}");
    let (code, body) = curl(&["-m", "5", &url("/close")]).unwrap();
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains("failed the request for listener web"),
        "{body}"
    );
    let started = Instant::now();
    let (code, body) = curl(&["-m", "5", &url("/slow")]).unwrap();
    assert_eq!(code, 504, "{body}");
    assert!(body.contains("sent no response within 1s"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // a dies; the probe has not noticed yet. GETs are retried on b; POSTs with a body are not.
    a.stop();
    for _ in 0..4 {
        let (code, body) = curl(&["-m", "5", &url("/")]).unwrap();
        assert_eq!(
            (code, body.split_whitespace().next()),
            (200, Some("b")),
            "{body}"
        );
    }
    let mut posts = Vec::new();
    for _ in 0..4 {
        posts.push(curl(&["-m", "5", "-d", "x=1", &url("/")]).unwrap());
    }
    assert!(
        posts
            .iter()
            .any(|(code, body)| *code == 502 && body.contains("unreachable")),
        "{posts:?}"
    );
    assert!(posts.iter().any(|(code, _)| *code == 200), "{posts:?}");
}

#[test]
fn a_listener_change_under_load_fails_no_request() {
    let lb = Lb::start("uc-lb-load", &["--drain-timeout", "5"]);
    let (a, b, c) = (Backend::http("a"), Backend::http("b"), Backend::http("c"));
    let p = port();
    lb.put_listener("web", &listener("http", p, &[a.addr, b.addr], json!({})));
    lb.wait_backend("web", a.addr, "up", Duration::from_secs(5));
    lb.wait_backend("web", b.addr, "up", Duration::from_secs(5));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (done, failed) = (done.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                for round in 0..40 {
                    // A new connection every 5 requests.
                    let mut stream = TcpStream::connect(("127.0.0.1", p)).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    for _ in 0..5 {
                        match get(&mut stream, "/") {
                            Ok((200, _)) => {}
                            other => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                errors.push(format!("round {round}: {other:?}"));
                                break;
                            }
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                errors
            })
        })
        .collect();
    let wait_done = |n: u64| {
        uc_testkit::wait_for("requests under load", Duration::from_secs(20), || {
            (done.load(Ordering::Relaxed) >= n).then_some(())
        })
    };
    wait_done(100);
    lb.put_listener(
        "web",
        &listener("http", p, &[a.addr, b.addr, c.addr], json!({})),
    );
    lb.wait_backend("web", c.addr, "up", Duration::from_secs(5));
    wait_done(300);
    lb.put_listener(
        "web",
        &listener(
            "http",
            p,
            &[b.addr, c.addr],
            json!({"balance": "least-connections"}),
        ),
    );
    wait_done(450);
    let health = json!({"healthCheck": {"type": "http", "path": "/", "intervalSeconds": 1, "timeoutSeconds": 1, "rise": 3, "fall": 3}});
    lb.put_listener("web", &listener("http", p, &[b.addr, c.addr], health));
    let errors: Vec<String> = clients
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests: {errors:?}"
    );
    assert_eq!(done.load(Ordering::Relaxed), 800);
    assert!(
        c.requests.load(Ordering::Relaxed) > 0,
        "the added backend took requests"
    );
    let a_before = a.requests.load(Ordering::Relaxed);
    for _ in 0..6 {
        assert_eq!(
            curl(&["-m", "5", &format!("http://127.0.0.1:{p}/")])
                .unwrap()
                .0,
            200
        );
    }
    assert_eq!(
        a.requests.load(Ordering::Relaxed),
        a_before,
        "the removed backend got requests"
    );
}

/// A client sending its request head a byte every 200 ms is cut off
/// within 3.5 s (by a 1 s client timeout).
fn slowloris_is_cut(mut slow: TcpStream) {
    let started = Instant::now();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: lb.test\r\n")
        .unwrap();
    let cut = (0..25).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        slow.write_all(b"X").is_err()
    });
    let mut rest = Vec::new();
    let read = slow.read_to_end(&mut rest);
    assert!(cut || read.is_ok(), "slow client still connected: {read:?}");
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "slow client cut after {:?}",
        started.elapsed()
    );
}

#[test]
fn malformed_slow_and_silent_clients_are_cut_off() {
    let lb = Lb::start("uc-lb-slow", &["--client-timeout", "1"]);
    let a = Backend::http("a");
    let p = port();
    lb.put_listener("web", &listener("http", p, &[a.addr], json!({})));
    lb.wait_backend("web", a.addr, "up", Duration::from_secs(5));
    let connect = || {
        let stream = TcpStream::connect(("127.0.0.1", p)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(4)))
            .unwrap();
        stream
    };
    // Malformed: a 400 from uc-lb (or a close), quickly, and nothing sent on.
    let mut bad = connect();
    bad.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = bad.read_to_string(&mut answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer:?}"
    );
    let before = a.requests.load(Ordering::Relaxed);
    // Slowloris: a header byte every 200 ms is cut off by the 1 s timeout.
    slowloris_is_cut(connect());
    // Silent: connected, nothing sent.
    let mut silent = connect();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = silent.read(&mut buf);
    assert!(matches!(read, Ok(0)), "a silent client is closed: {read:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "silent client cut after {:?}",
        started.elapsed()
    );
    assert_eq!(
        a.requests.load(Ordering::Relaxed),
        before,
        "nothing reached the backend"
    );
    // And uc-lb still serves; a keep-alive connection left idle is closed too.
    let mut good = connect();
    let (code, body) = get(&mut good, "/").unwrap();
    assert_eq!((code, body.split_whitespace().next()), (200, Some("a")));
    let started = Instant::now();
    let read = good.read(&mut buf);
    assert!(
        matches!(read, Ok(0)),
        "an idle keep-alive connection is closed: {read:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "idle connection cut after {:?}",
        started.elapsed()
    );
}

#[test]
fn a_request_to_a_drained_backend_ends_at_the_drain_timeout() {
    let lb = Lb::start("uc-lb-drain7", &["--drain-timeout", "1"]);
    let (a, b) = (Backend::http("a"), Backend::http("b"));
    let p = port();
    lb.put_listener("web", &listener("http", p, &[a.addr], json!({})));
    lb.wait_backend("web", a.addr, "up", Duration::from_secs(5));
    // /slow answers after 5 s; a is removed while it is in flight.
    let slow = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = curl(&["-m", "8", &format!("http://127.0.0.1:{p}/slow")]);
        (answer, started.elapsed())
    });
    uc_testkit::wait_for("the slow request at a", Duration::from_secs(3), || {
        (a.requests.load(Ordering::Relaxed) > 0).then_some(())
    });
    lb.put_listener("web", &listener("http", p, &[b.addr], json!({})));
    let (answer, took) = slow.join().unwrap();
    let (code, body) = answer.expect("an answer from uc-lb");
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("was drained before it answered"), "{body}");
    assert!(took < Duration::from_secs(4), "cut after {took:?}");
    lb.wait_backend("web", b.addr, "up", Duration::from_secs(5));
    let (code, body) = curl(&["-m", "5", &format!("http://127.0.0.1:{p}/")]).unwrap();
    assert_eq!((code, body.split_whitespace().next()), (200, Some("b")));
}

#[test]
fn routes_send_requests_by_host_and_path() {
    let lb = Lb::start("uc-lb-routes", &[]);
    let (a, b, c) = (Backend::http("a"), Backend::http("b"), Backend::http("c"));
    let p = port();
    let only = |addr: std::net::SocketAddr| json!({"service": null, "servicePort": null, "endpoints": [addr.to_string()]});
    let routes = json!({"routes": [
        {"host": "api.test", "pathPrefix": "/", "backends": only(b.addr)},
        {"host": "*.shop.test", "pathPrefix": "/static/", "backends": only(c.addr)},
        {"host": null, "pathPrefix": "/static/", "backends": only(b.addr)}
    ]});
    lb.put_listener("web", &listener("http", p, &[a.addr], routes));
    for addr in [a.addr, b.addr, c.addr] {
        lb.wait_backend("web", addr, "up", Duration::from_secs(5));
    }
    let who = |host: &str, path: &str, h2: bool| {
        let url = format!("http://127.0.0.1:{p}{path}");
        let host = format!("Host: {host}");
        let mut args = vec!["-m", "5", "-H", &host, &url];
        if h2 {
            args.push("--http2-prior-knowledge");
        }
        let (code, body) = curl(&args).unwrap();
        assert_eq!(code, 200, "{body}");
        body.split_whitespace().next().unwrap().to_owned()
    };
    // (Host, path, backend): the first route that matches, else the listener's.
    let table = [
        ("api.test", "/", "b"),
        ("API.test:8080", "/x", "b"),
        ("www.shop.test", "/static/x.css", "c"),
        ("www.shop.test", "/cart", "a"),
        ("www.test", "/static/x.css", "b"),
        ("www.test", "/", "a"),
        ("api.test", "/static/x.css", "b"),
    ];
    for (host, path, expected) in table {
        assert_eq!(who(host, path, false), expected, "{host}{path}");
    }
    // HTTP/2 names the host in :authority.
    assert_eq!(who("api.test", "/", true), "b");
    assert_eq!(who("www.shop.test", "/static/y", true), "c");
}

/// A backend that switches to an echo protocol on `Upgrade: echo` (as a
/// WebSocket server switches after its handshake) and echoes bytes.
fn upgrade_backend(mut stream: TcpStream) {
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    let lower = head.to_ascii_lowercase();
    if !(lower.contains("\r\nupgrade: echo\r\n") && lower.contains("\r\nconnection: upgrade\r\n")) {
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let _ = stream.write_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n",
    );
    let mut buf = [0u8; 1024];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

#[test]
fn an_upgrade_passes_through_both_ways() {
    let lb = Lb::start("uc-lb-upgrade", &[]);
    let backend = RawBackend::start(upgrade_backend);
    let p = port();
    lb.put_listener("web", &listener("http", p, &[backend.addr], json!({})));
    lb.wait_backend("web", backend.addr, "up", Duration::from_secs(5));
    let mut stream = TcpStream::connect(("127.0.0.1", p)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(
            b"GET /chat HTTP/1.1\r\nHost: lb.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .unwrap();
    let head = read_head(&mut stream).expect("a response head");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: echo"), "{head}");
    assert!(lower.contains("connection: upgrade"), "{head}");
    for message in ["ping", "a longer message after the first"] {
        stream.write_all(message.as_bytes()).unwrap();
        let mut echoed = vec![0u8; message.len()];
        stream.read_exact(&mut echoed).unwrap();
        assert_eq!(String::from_utf8_lossy(&echoed), message);
    }
    // A plain request to the same listener still works.
    let (code, _) = curl(&["-m", "5", &format!("http://127.0.0.1:{p}/")]).unwrap();
    assert_eq!(
        code, 400,
        "the echo backend refuses a request without upgrade"
    );
}

#[test]
fn the_listeners_own_timeouts_cut_slow_clients_and_malformed_gets_400() {
    // The daemon's client timeout stays 10 s; the listener's is 1 s.
    let lb = Lb::start("uc-lb-listener-timeouts", &[]);
    let a = Backend::http("a");
    let p = port();
    let timeouts = json!({"timeouts": {"clientHeaderSeconds": 1, "idleSeconds": 1}});
    lb.put_listener("web", &listener("http", p, &[a.addr], timeouts));
    lb.wait_backend("web", a.addr, "up", Duration::from_secs(5));
    let connect = || {
        let stream = TcpStream::connect(("127.0.0.1", p)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
    };
    let mut bad = connect();
    bad.write_all(b"GET / HTTP/1.1\r\nHost lb.test\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = bad.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    // Slowloris: a header byte every 200 ms, cut off after 1 s.
    slowloris_is_cut(connect());
    // An idle keep-alive connection is closed after 1 s, not 10.
    let mut idle = connect();
    assert_eq!(get(&mut idle, "/").unwrap().0, 200);
    let started = Instant::now();
    let mut buf = [0u8; 16];
    assert!(matches!(idle.read(&mut buf), Ok(0)));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "idle connection cut after {:?}",
        started.elapsed()
    );
}
