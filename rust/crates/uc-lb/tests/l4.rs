//! uc-lb's L4 listeners, through the real binary against etcd: TCP
//! connections spread over healthy backends; a backend that dies leaves
//! rotation within interval × fall and comes back after rise successes;
//! a backend removed from the listener drains (no new connections, open
//! ones go on until the drain timeout); UDP sessions reach their backends;
//! a listener whose port is taken is reported while the others serve;
//! Maglev keeps a client on its backend; weights skew the spread; the
//! PROXY v2 header reaches the backend; an idle connection is closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::{curl, get, listener, port, Backend, Lb, RawBackend, UdpEcho};
use serde_json::json;

/// Who answers `n` new connections through `port` (a TCP listener in front of HTTP backends).
fn spread(port: u16, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let name = answered_by(port, "127.0.0.1");
        *seen.entry(name).or_default() += 1;
    }
    seen
}

/// The backend answering a new connection from `client` (an address on lo).
fn answered_by(port: u16, client: &str) -> String {
    let (code, body) = curl(&[
        "-m",
        "5",
        "--interface",
        client,
        &format!("http://127.0.0.1:{port}/"),
    ])
    .expect("a connection through uc-lb");
    assert_eq!(code, 200, "{body}");
    body.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn tcp_balances_follows_health_and_drains() {
    // interval 1 s, fall 2, rise 2 (common::listener); drain timeout 2 s.
    let lb = Lb::start("uc-lb-l4", &["--drain-timeout", "2"]);
    let mut a = Backend::http("a");
    let b = Backend::http("b");
    let c = Backend::http("c");
    let p = port();
    lb.put_listener(
        "tcp",
        &listener("tcp", p, &[a.addr, b.addr, c.addr], json!({})),
    );
    for backend in [&a, &b, &c] {
        lb.wait_backend("tcp", backend.addr, "up", Duration::from_secs(5));
    }
    let seen = spread(p, 30);
    assert_eq!(
        seen.values().copied().collect::<Vec<_>>(),
        [10, 10, 10],
        "round-robin over three: {seen:?}"
    );

    // a dies: out of rotation within interval × fall (2 s), plus slack for one probe.
    let addr_a = a.addr;
    a.stop();
    let took = lb.wait_backend("tcp", addr_a, "down", Duration::from_secs(4));
    assert!(took <= Duration::from_millis(3200), "down after {took:?}");
    let seen = spread(p, 10);
    assert!(
        !seen.contains_key("a"),
        "a dead backend got connections: {seen:?}"
    );

    // a comes back: in rotation after rise (2) successes.
    let a = Backend::http_at("a", addr_a);
    let took = lb.wait_backend("tcp", addr_a, "up", Duration::from_secs(4));
    assert!(took <= Duration::from_millis(3200), "up after {took:?}");
    assert!(spread(p, 9).contains_key("a"), "a is back in rotation");

    // Drain b: remove it while a connection to it is open.
    let mut open = loop {
        let mut stream = TcpStream::connect(("127.0.0.1", p)).unwrap();
        let (_, body) = get(&mut stream, "/").unwrap();
        if body.starts_with("b ") {
            break stream;
        }
    };
    lb.put_listener("tcp", &listener("tcp", p, &[a.addr, c.addr], json!({})));
    lb.wait_backend("tcp", b.addr, "draining", Duration::from_secs(2));
    let seen = spread(p, 10);
    assert!(
        !seen.contains_key("b"),
        "a drained backend got new connections: {seen:?}"
    );
    let (code, body) = get(&mut open, "/").expect("the open connection goes on while draining");
    assert_eq!((code, body.split_whitespace().next()), (200, Some("b")));
    // The drain timeout (2 s) closes it.
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let closed = open.read(&mut buf);
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed after {:?}",
        started.elapsed()
    );
    wait_gone(&lb, "tcp", b.addr);

    let metrics = lb.metrics();
    for line in [
        "uc_lb_listener_up{listener=\"tcp\"} 1",
        &format!(
            "uc_lb_backend_up{{listener=\"tcp\",backend=\"{}\"}} 1",
            a.addr
        ),
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let per_backend = |prefix: &str| {
        metrics
            .lines()
            .any(|l| l.starts_with(prefix) && l.contains(&format!("backend=\"{}\"", c.addr)))
    };
    assert!(
        per_backend("uc_lb_bytes_total{listener=\"tcp\""),
        "{metrics}"
    );
    assert!(
        per_backend("uc_lb_backend_latency_seconds_count{listener=\"tcp\""),
        "{metrics}"
    );
}

fn wait_gone(lb: &Lb, listener: &str, backend: SocketAddr) {
    uc_testkit::wait_for(
        "the drained backend gone from the status",
        Duration::from_secs(3),
        || {
            let status = lb.status(listener)?;
            let present = status["backends"]
                .as_array()?
                .iter()
                .any(|b| b["address"] == json!(backend.to_string()));
            (!present).then_some(())
        },
    );
}

#[test]
fn udp_sessions_reach_their_backends() {
    let lb = Lb::start("uc-lb-udp", &[]);
    let x = UdpEcho::start("x");
    let y = UdpEcho::start("y");
    let p = port();
    lb.put_listener("dns", &listener("udp", p, &[x.addr, y.addr], json!({})));
    lb.wait_backend("dns", x.addr, "up", Duration::from_secs(5));
    lb.wait_backend("dns", y.addr, "up", Duration::from_secs(5));
    let mut seen = BTreeMap::new();
    for i in 0..4 {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        for j in 0..3 {
            let message = format!("m{i}-{j}");
            client
                .send_to(message.as_bytes(), ("127.0.0.1", p))
                .unwrap();
            let mut buf = [0u8; 256];
            let n = client.recv(&mut buf).expect("a reply through uc-lb");
            let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
            let (name, echoed) = reply.split_once(':').unwrap();
            assert_eq!(echoed, message);
            // A client's datagrams stay with one backend.
            assert_eq!(
                *seen.entry(i).or_insert_with(|| name.to_owned()),
                name,
                "client {i}"
            );
        }
    }
    let names: std::collections::BTreeSet<&String> = seen.values().collect();
    assert_eq!(names.len(), 2, "both backends used: {seen:?}");
}

#[test]
fn a_port_in_use_is_reported_while_the_others_serve() {
    let lb = Lb::start("uc-lb-bind", &[]);
    let backend = Backend::http("w");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let free = port();
    lb.put_listener("busy", &listener("tcp", busy, &[backend.addr], json!({})));
    lb.put_listener("free", &listener("http", free, &[backend.addr], json!({})));
    lb.wait_backend("free", backend.addr, "up", Duration::from_secs(5));
    let (code, health) = uc_testkit::wait_for("/health failing", Duration::from_secs(5), || {
        lb.health()
            .filter(|(_, h)| h["failing"]["busy"].is_string())
    });
    assert_eq!(code, 503, "{health}");
    assert_eq!(health["status"], "failing");
    assert!(
        health["failing"]["busy"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{busy}")),
        "{health}"
    );
    let status = lb.status("busy").expect("the busy listener's status");
    assert_eq!(status["serving"], false, "{status}");
    assert!(
        status["error"].as_str().unwrap().contains("cannot bind"),
        "{status}"
    );
    let (code, body) = curl(&["-m", "5", &format!("http://127.0.0.1:{free}/")]).unwrap();
    assert_eq!((code, body.split_whitespace().next()), (200, Some("w")));
    assert!(lb.log().contains("listener cannot serve"), "logged");
    // The port frees: the listener binds on its own, /health is ok again.
    drop(taken);
    uc_testkit::wait_for("/health ok", Duration::from_secs(5), || {
        lb.health().filter(|(c, _)| *c == 200)
    });
    lb.wait_backend("busy", backend.addr, "up", Duration::from_secs(5));
    let (code, _) = curl(&["-m", "5", &format!("http://127.0.0.1:{busy}/")]).unwrap();
    assert_eq!(code, 200);
}

#[test]
fn maglev_keeps_each_client_on_its_backend() {
    let lb = Lb::start("uc-lb-maglev", &[]);
    let backends = [Backend::http("a"), Backend::http("b"), Backend::http("c")];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let p = port();
    let maglev = json!({"balance": "maglev"});
    lb.put_listener("tcp", &listener("tcp", p, &addrs, maglev.clone()));
    for addr in &addrs {
        lb.wait_backend("tcp", *addr, "up", Duration::from_secs(5));
    }
    // 60 clients (source addresses), three connections each.
    let clients: Vec<String> = (1..=60).map(|i| format!("127.0.1.{i}")).collect();
    let mut first = BTreeMap::new();
    let mut per_backend: BTreeMap<String, usize> = BTreeMap::new();
    for client in &clients {
        let name = answered_by(p, client);
        for _ in 0..2 {
            assert_eq!(answered_by(p, client), name, "{client} changed backend");
        }
        *per_backend.entry(name.clone()).or_default() += 1;
        first.insert(client.clone(), name);
    }
    // Spread: each backend has a fair share of 60 hashed clients.
    assert_eq!(per_backend.len(), 3, "{per_backend:?}");
    assert!(
        per_backend.values().all(|n| *n >= 10),
        "uneven: {per_backend:?}"
    );
    // Removing c moves c's clients only (Maglev moves ~1/N).
    lb.put_listener("tcp", &listener("tcp", p, &addrs[..2], maglev));
    wait_gone(&lb, "tcp", addrs[2]);
    let moved: Vec<&String> = clients
        .iter()
        .filter(|c| first[*c] != "c" && answered_by(p, c) != first[*c])
        .collect();
    assert!(
        moved.len() <= 1,
        "clients of a and b moved: {moved:?} of {first:?}"
    );
}

#[test]
fn weights_skew_the_spread() {
    let lb = Lb::start("uc-lb-weights", &[]);
    let (a, b) = (Backend::http("a"), Backend::http("b"));
    let p = port();
    let weights = json!({"backends": {
        "service": null, "servicePort": null,
        "endpoints": [a.addr.to_string(), b.addr.to_string()],
        "weights": {a.addr.to_string(): 3}
    }});
    lb.put_listener("tcp", &listener("tcp", p, &[], weights));
    for addr in [a.addr, b.addr] {
        lb.wait_backend("tcp", addr, "up", Duration::from_secs(5));
    }
    let seen = spread(p, 40);
    assert_eq!(
        (seen.get("a"), seen.get("b")),
        (Some(&30), Some(&10)),
        "weight 3 against 1 over 40 connections: {seen:?}"
    );
}

/// A backend expecting a PROXY v2 header (TCP over IPv4): it answers with
/// the addresses it names, `src=<client> dst=<listener>`, and closes.
fn proxy_v2_backend(mut stream: TcpStream) {
    let mut header = [0u8; 28];
    if stream.read_exact(&mut header).is_err() {
        return; // a health probe: connects and closes
    }
    let signature = b"\r\n\r\n\0\r\nQUIT\n";
    let text = if &header[..12] != signature || header[12] != 0x21 || header[13] != 0x11 {
        format!("bad header {header:?}")
    } else {
        let addr = |ip: &[u8], port: &[u8]| {
            let ip = std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
            SocketAddr::from((ip, u16::from_be_bytes([port[0], port[1]])))
        };
        format!(
            "src={} dst={}",
            addr(&header[16..20], &header[24..26]),
            addr(&header[20..24], &header[26..28])
        )
    };
    let _ = std::io::Write::write_all(&mut stream, text.as_bytes());
}

#[test]
fn the_proxy_v2_header_names_the_client_and_the_listener() {
    let lb = Lb::start("uc-lb-proxy-v2", &[]);
    let backend = RawBackend::start(proxy_v2_backend);
    let p = port();
    lb.put_listener(
        "tcp",
        &listener("tcp", p, &[backend.addr], json!({"proxyProtocol": true})),
    );
    lb.wait_backend("tcp", backend.addr, "up", Duration::from_secs(5));
    let mut client = TcpStream::connect(("127.0.0.1", p)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert_eq!(
        answer,
        format!("src={} dst=127.0.0.1:{p}", client.local_addr().unwrap())
    );
}

#[test]
fn an_idle_tcp_connection_is_closed_after_the_listeners_idle_timeout() {
    let lb = Lb::start("uc-lb-tcp-idle", &[]);
    let a = Backend::http("a");
    let p = port();
    lb.put_listener(
        "tcp",
        &listener("tcp", p, &[a.addr], json!({"timeouts": {"idleSeconds": 1}})),
    );
    lb.wait_backend("tcp", a.addr, "up", Duration::from_secs(5));
    let mut stream = TcpStream::connect(("127.0.0.1", p)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Busy for 1.5 s (a request every 300 ms) is not idle.
    for _ in 0..5 {
        assert_eq!(get(&mut stream, "/").unwrap().0, 200);
        std::thread::sleep(Duration::from_millis(300));
    }
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = stream.read(&mut buf);
    assert!(matches!(read, Ok(0)), "idle connection closed: {read:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(2500),
        "closed after {took:?} idle"
    );
}

/// Echoes every byte back until the client closes its side.
fn echo_backend(mut stream: TcpStream) {
    let mut buf = [0u8; 16384];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || std::io::Write::write_all(&mut stream, &buf[..n]).is_err() {
            return;
        }
    }
}

/// 8 MiB each way: enough to fill uc-lb's 64 KiB reads, so the copy
/// switches to splice(2); every byte arrives, in order.
#[test]
fn a_bulk_transfer_arrives_intact() {
    let lb = Lb::start("uc-lb-bulk", &[]);
    let backend = RawBackend::start(echo_backend);
    let p = port();
    lb.put_listener("tcp", &listener("tcp", p, &[backend.addr], json!({})));
    lb.wait_backend("tcp", backend.addr, "up", Duration::from_secs(5));
    let data: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut client = TcpStream::connect(("127.0.0.1", p)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = client.try_clone().unwrap();
    let sent = data.clone();
    let sending = std::thread::spawn(move || {
        std::io::Write::write_all(&mut writer, &sent).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut echoed = Vec::with_capacity(data.len());
    client.read_to_end(&mut echoed).unwrap();
    sending.join().unwrap();
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "the echoed bytes differ");
    let metrics = lb.metrics();
    let inbound = format!(
        "uc_lb_bytes_total{{listener=\"tcp\",backend=\"{}\",direction=\"in\"}} {}",
        backend.addr,
        data.len()
    );
    assert!(metrics.contains(&inbound), "{inbound} in\n{metrics}");
}
