//! VIP failover between two uc-lb nodes, in network namespaces the test
//! creates (root only: it prints a SKIP line otherwise).
//!
//! A bridge (in its own namespace) joins three namespaces on 198.18.N.0/24:
//! the LB nodes `a` (.1) and `b` (.2) and a client `c` (.3), and the root
//! namespace (.254) through a veth, where the store (etcd) and the HTTP
//! backend listen. One `http` listener is declared on the VIP .100, an
//! address no namespace has. Each uc-lb runs inside its namespace with
//! `ip netns exec`, from flags, with a 5 s VIP lease. The same over IPv6
//! (fd00:18:N::/64, an unsolicited neighbour advertisement), and a holder
//! that loses the store.
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

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uc_types::keys;

use netns::{is_root, Scene, TTL};

/// What a takeover after a holder's death may take beyond the TTL: the
/// store's expiry check, one campaign round, the address going up.
const MARGIN: Duration = Duration::from_secs(2);

fn skip(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIP {test}: needs root (network namespaces)");
    }
    !is_root()
}

const HOSTS: &[(&str, u8)] = &[("a", 1), ("b", 2), ("c", 3)];

#[test]
fn a_vip_fails_over_between_two_lb_nodes_and_the_client_follows() {
    if skip("a_vip_fails_over_between_two_lb_nodes_and_the_client_follows") {
        return;
    }
    let scene = Scene::new(
        "lb-vip",
        ("v", 0),
        HOSTS,
        |n| n.host(100),
        &["lb-a", "lb-b"],
    );
    let (net, vip) = (&scene.net, &scene.vip);

    // a starts first and takes the VIP; b then follows it.
    let mut a = scene.node("a", 1, "1");
    a.wait_holding(&scene, Duration::from_secs(10));
    let mut b = scene.node("b", 2, "1");
    b.wait_following("lb-a");
    assert!(!net.has_address("b", vip), "b must not have the VIP");
    scene.served_from("c", "the client's request through a");
    assert_eq!(net.neighbour("c", vip), Some(net.mac("a")));
    let a_vip = a.vip("web").unwrap();
    assert_eq!(
        (&a_vip["holder"], &a_vip["held"]),
        (&json!("lb-a"), &json!(true))
    );
    assert_eq!(a_vip["interface"], "eth0");
    let metric = format!("uc_lb_vip_held{{address=\"{vip}\"}} 1");
    assert!(a.metrics().contains(&metric), "{}", a.metrics());
    let status = scene
        .etcd()
        .get(&keys::lb_listener_status("lb-a", "web"))
        .unwrap();
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["vip"]["holder"], "lb-a", "{status}");

    // kill -9 of the holder: b takes over within the TTL (plus the margin),
    // announces it, and the client's ARP entry and new connections follow.
    a.kill();
    let took = b.wait_holding(
        &scene,
        Duration::from_secs(TTL) + MARGIN + Duration::from_secs(1),
    );
    eprintln!("takeover after kill -9: {took:?} (lease TTL {TTL} s)");
    assert!(took <= Duration::from_secs(TTL) + MARGIN, "took {took:?}");
    scene.wait_neighbour("c", &b);
    scene.served_from("c", "the client's request through b");
    assert!(b.metrics().contains(&metric), "{}", b.metrics());

    // The killed a left its address up; a new run removes it and follows b.
    assert!(
        net.has_address("a", vip),
        "kill -9 cannot remove the address"
    );
    a = scene.node("a", 1, "2");
    wait_for_gone(&scene, "a");
    a.wait_following("lb-b");

    // SIGTERM of the holder releases at once: a takes the VIP well within
    // the TTL, b's address is gone, and the client follows a again.
    let start = Instant::now();
    b.process.terminate(Duration::from_secs(6));
    assert!(!net.has_address("b", vip), "b stopped but kept the VIP");
    a.wait_holding(&scene, Duration::from_secs(TTL));
    let took = start.elapsed();
    eprintln!("takeover after SIGTERM: {took:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    scene.wait_neighbour("c", &a);
    scene.served_from("c", "the client's request through a again");
}

fn wait_for_gone(scene: &Scene, ns: &str) {
    uc_testkit::wait_for(
        &format!("{ns} to have no VIP address"),
        Duration::from_secs(TTL + 1),
        || (!scene.net.has_address(ns, &scene.vip)).then_some(()),
    );
}

/// The same over IPv6: the new holder's unsolicited neighbour
/// advertisement moves the client's neighbour entry (the killed node still
/// has the address, so a fresh resolution could have found its MAC).
#[test]
fn an_ipv6_vip_fails_over_and_the_client_follows_the_advertisement() {
    if skip("an_ipv6_vip_fails_over_and_the_client_follows_the_advertisement") {
        return;
    }
    let scene = Scene::new(
        "lb-vip6",
        ("w", 1),
        HOSTS,
        |n| n.host6(0x100),
        &["lb-a", "lb-b"],
    );
    let mut a = scene.node("a", 1, "1");
    a.wait_holding(&scene, Duration::from_secs(10));
    let b = scene.node("b", 2, "1");
    b.wait_following("lb-a");
    scene.served_from("c", "the client's request through a");
    assert_eq!(
        scene.net.neighbour("c", &scene.vip),
        Some(scene.net.mac("a"))
    );

    a.kill();
    let took = b.wait_holding(
        &scene,
        Duration::from_secs(TTL) + MARGIN + Duration::from_secs(1),
    );
    eprintln!("IPv6 takeover after kill -9: {took:?} (lease TTL {TTL} s)");
    assert!(took <= Duration::from_secs(TTL) + MARGIN, "took {took:?}");
    scene.wait_neighbour("c", &b);
    scene.served_from("c", "the client's request through b");
}

/// A holder that loses the store removes the address by the time its lease
/// could expire there (so no other node can have it yet), and takes the
/// VIP again when a store is back.
#[test]
fn a_holder_cut_off_from_the_store_drops_the_vip_within_the_ttl() {
    if skip("a_holder_cut_off_from_the_store_drops_the_vip_within_the_ttl") {
        return;
    }
    let mut scene = Scene::new(
        "lb-vip-store",
        ("x", 2),
        &[("a", 1), ("c", 3)],
        |n| n.host(100),
        &["lb-a"],
    );
    let a = scene.node("a", 1, "1");
    a.wait_holding(&scene, Duration::from_secs(10));

    let start = Instant::now();
    scene.stop_store();
    wait_for_gone(&scene, "a");
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
    let answer = scene.net.get("c", &scene.url);
    assert!(
        answer.as_ref().is_none_or(|(code, _)| *code != 200),
        "{answer:?}"
    );

    scene.start_store("store2");
    a.wait_holding(&scene, Duration::from_secs(15));
}
