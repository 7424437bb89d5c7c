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
mod netns;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uc_testkit::{free_port, wait_for, Etcd, TestDir};
use uc_types::keys;

use common::{listener, Backend};
use netns::{is_root, Net, Node, TTL};

/// What a takeover after a holder's death may take beyond the TTL: the
/// store's expiry check, one campaign round, the address going up.
const MARGIN: Duration = Duration::from_secs(2);

#[test]
fn a_vip_fails_over_between_two_lb_nodes_and_the_client_follows() {
    if !is_root() {
        eprintln!("SKIP a_vip_fails_over_between_two_lb_nodes_and_the_client_follows: needs root (network namespaces)");
        return;
    }
    let dir = TestDir::new("lb-vip");
    let net = Net::create("v", 0, &[("a", 1), ("b", 2), ("c", 3)]);
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
    a.wait_holding(&net, &etcd, &vip, Duration::from_secs(10));
    let mut b = Node::start(&net, &dir, "b", 2, &store, "1");
    wait_for("b to see a as the holder", Duration::from_secs(10), || {
        let v = b.vip("web")?;
        (v["holder"] == "lb-a" && v["held"] == false).then_some(())
    });
    assert!(!net.has_address("b", &vip), "b must not have the VIP");
    let served = wait_for(
        "the client's request through a",
        Duration::from_secs(10),
        || net.get("c", &url).filter(|(code, _)| *code == 200),
    );
    assert!(served.1.contains("backend"), "{served:?}");
    assert_eq!(net.neighbour("c", &vip), Some(net.mac("a")));
    let a_vip = a.vip("web").unwrap();
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
    let took = b.wait_holding(
        &net,
        &etcd,
        &vip,
        Duration::from_secs(TTL) + MARGIN + Duration::from_secs(1),
    );
    eprintln!("takeover after kill -9: {took:?} (lease TTL {TTL} s)");
    assert!(took <= Duration::from_secs(TTL) + MARGIN, "took {took:?}");
    let b_mac = net.mac("b");
    wait_for(
        "the client's ARP entry to move to b",
        Duration::from_secs(3),
        || (net.neighbour("c", &vip).as_deref() == Some(b_mac.as_str())).then_some(()),
    );
    let served = wait_for(
        "the client's request through b",
        Duration::from_secs(5),
        || net.get("c", &url).filter(|(code, _)| *code == 200),
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
        let v = a.vip("web")?;
        (v["holder"] == "lb-b" && v["held"] == false).then_some(())
    });

    // SIGTERM of the holder releases at once: a takes the VIP well within
    // the TTL, b's address is gone, and the client follows a again.
    let start = Instant::now();
    b.process.terminate(Duration::from_secs(6));
    assert!(!net.has_address("b", &vip), "b stopped but kept the VIP");
    a.wait_holding(&net, &etcd, &vip, Duration::from_secs(TTL));
    let took = start.elapsed();
    eprintln!("takeover after SIGTERM: {took:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let a_mac = net.mac("a");
    wait_for(
        "the client's ARP entry to move back to a",
        Duration::from_secs(3),
        || (net.neighbour("c", &vip).as_deref() == Some(a_mac.as_str())).then_some(()),
    );
    let served = wait_for(
        "the client's request through a again",
        Duration::from_secs(5),
        || net.get("c", &url).filter(|(code, _)| *code == 200),
    );
    assert!(served.1.contains("backend"), "{served:?}");
    drop(b);
}

/// The same over IPv6: the new holder's unsolicited neighbour
/// advertisement moves the client's neighbour entry.
#[test]
fn an_ipv6_vip_fails_over_and_the_client_follows_the_advertisement() {
    if !is_root() {
        eprintln!("SKIP an_ipv6_vip_fails_over_and_the_client_follows_the_advertisement: needs root (network namespaces)");
        return;
    }
    let dir = TestDir::new("lb-vip6");
    let net = Net::create("w", 1, &[("a", 1), ("b", 2), ("c", 3)]);
    let store = format!("http://{}:{}", net.host(254), free_port());
    let etcd = Etcd::start_at(&dir.join("store"), &store);
    let backend_addr: SocketAddr = format!("{}:0", net.host(254)).parse().unwrap();
    let backend = Backend::http_at("backend", backend_addr);
    let vip = net.host6(0x100);
    let declared = listener(
        "http",
        8080,
        &[backend.addr],
        json!({"address": vip, "nodes": ["lb-a", "lb-b"]}),
    );
    etcd.ctl(&["put", &keys::lb_listener("web6"), &declared.to_string()]);
    let url = format!("http://[{vip}]:8080/");

    let a = Node::start(&net, &dir, "a", 1, &store, "1");
    a.wait_holding(&net, &etcd, &vip, Duration::from_secs(10));
    let b = Node::start(&net, &dir, "b", 2, &store, "1");
    wait_for("b to see a as the holder", Duration::from_secs(10), || {
        (b.vip("web6")?["holder"] == "lb-a").then_some(())
    });
    let served = wait_for(
        "the client's request through a",
        Duration::from_secs(10),
        || net.get("c", &url).filter(|(code, _)| *code == 200),
    );
    assert!(served.1.contains("backend"), "{served:?}");
    assert_eq!(net.neighbour("c", &vip), Some(net.mac("a")));

    let mut a = a;
    a.process.0.kill().unwrap();
    let _ = a.process.0.wait();
    let took = b.wait_holding(
        &net,
        &etcd,
        &vip,
        Duration::from_secs(TTL) + MARGIN + Duration::from_secs(1),
    );
    eprintln!("IPv6 takeover after kill -9: {took:?} (lease TTL {TTL} s)");
    assert!(took <= Duration::from_secs(TTL) + MARGIN, "took {took:?}");
    let b_mac = net.mac("b");
    wait_for(
        "the client's neighbour entry to move to b",
        Duration::from_secs(3),
        || (net.neighbour("c", &vip).as_deref() == Some(b_mac.as_str())).then_some(()),
    );
    let served = wait_for(
        "the client's request through b",
        Duration::from_secs(5),
        || net.get("c", &url).filter(|(code, _)| *code == 200),
    );
    assert!(served.1.contains("backend"), "{served:?}");
}

/// A holder that loses the store removes the address by the time its lease
/// could expire there (so no other node can have it yet), and takes the
/// VIP again when a store is back.
#[test]
fn a_holder_cut_off_from_the_store_drops_the_vip_within_the_ttl() {
    if !is_root() {
        eprintln!("SKIP a_holder_cut_off_from_the_store_drops_the_vip_within_the_ttl: needs root (network namespaces)");
        return;
    }
    let dir = TestDir::new("lb-vip-store");
    let net = Net::create("x", 2, &[("a", 1), ("c", 3)]);
    let store = format!("http://{}:{}", net.host(254), free_port());
    let etcd = Etcd::start_at(&dir.join("store"), &store);
    let backend_addr: SocketAddr = format!("{}:0", net.host(254)).parse().unwrap();
    let backend = Backend::http_at("backend", backend_addr);
    let vip = net.host(100);
    let declared = listener(
        "http",
        8080,
        &[backend.addr],
        json!({"address": vip, "nodes": ["lb-a"]}),
    );
    let put = |etcd: &Etcd| etcd.ctl(&["put", &keys::lb_listener("web"), &declared.to_string()]);
    put(&etcd);
    let a = Node::start(&net, &dir, "a", 1, &store, "1");
    a.wait_holding(&net, &etcd, &vip, Duration::from_secs(10));

    let start = Instant::now();
    drop(etcd);
    wait_for(
        "a to drop the VIP without the store",
        Duration::from_secs(TTL + 2),
        || (!net.has_address("a", &vip)).then_some(()),
    );
    let took = start.elapsed();
    eprintln!("VIP dropped {took:?} after the store went (lease TTL {TTL} s)");
    // The deadline runs from the last renewal sent, before the store went,
    // and ends a tenth of the TTL early: within the TTL, polling included.
    assert!(took < Duration::from_secs(TTL), "took {took:?}");
    let v = a.vip("web").unwrap();
    assert_eq!(
        (&v["held"], &v["holder"]),
        (&json!(false), &Value::Null),
        "{v}"
    );
    assert!(net
        .get("c", &format!("http://{vip}:8080/"))
        .is_none_or(|(code, _)| code != 200));

    let etcd = Etcd::start_at(&dir.join("store2"), &store);
    put(&etcd);
    a.wait_holding(&net, &etcd, &vip, Duration::from_secs(15));
}
