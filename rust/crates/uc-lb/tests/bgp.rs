//! The VIPs a node holds announced over BGP by BIRD 2 (as the lb module
//! configures it), learnt by a second BIRD: root only (network
//! namespaces), and BIRD must be installed (scripts/lib/prereqs.sh); a SKIP
//! line is printed otherwise.
//!
//! Namespaces `a` (.1) and `b` (.2) each run a uc-lb and a BIRD with the
//! module's configuration (`lb_bird_config`, the text modules/lb.nix
//! renders: a `direct` protocol importing the listeners' VIPs as host
//! routes when they are on an interface, exported to the peer); namespace
//! `r` (.3) runs the peer's BIRD, which puts what it learns into its
//! kernel. Checked: the peer learns the VIP via the holder `a`, and its
//! curl reaches the listener through that route; after SIGTERM of `a` the
//! route via `a` is withdrawn and the VIP is learnt via `b`, and the
//! peer's requests go there; a restarted `a` follows and announces nothing;
//! when `b`'s node dies (uc-lb killed, link down), `a` takes the VIP and
//! the peer drops `b`'s route within the 9 s hold time and routes to `a`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod netns;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use uc_testkit::{wait_for, KillOnDrop};

use netns::{is_root, Net, Scene, TTL};

const LB_ASN: u32 = 65000;
const PEER_ASN: u32 = 64512;

/// BIRD's configuration on an LB node, as modules/lb.nix renders it for
/// one IPv4 peer.
fn lb_bird_config(router_id: &str, vips: &[&str], peer: &str) -> String {
    let vips: Vec<String> = vips.iter().map(|v| format!("{v}/32")).collect();
    format!(
        "router id {router_id};\n\
         protocol device {{ scan time 5; }}\n\
         protocol direct uc_vips {{\n  ipv4 {{ import where net ~ [ {} ]; }};\n  interface \"*\";\n}}\n\
         protocol bgp peer0 {{\n  local as {LB_ASN};\n  neighbor {peer} as {PEER_ASN};\n  hold time 9;\n  \
         ipv4 {{ import none; export where proto = \"uc_vips\"; }};\n}}\n",
        vips.join(", ")
    )
}

/// The peer: learns from both LB nodes, puts the routes in its kernel.
fn peer_bird_config(router_id: &str, lbs: &[&str]) -> String {
    let mut text = format!(
        "router id {router_id};\n\
         protocol device {{ scan time 5; }}\n\
         protocol kernel {{ ipv4 {{ import none; export all; }}; }}\n"
    );
    for (i, lb) in lbs.iter().enumerate() {
        text += &format!(
            "protocol bgp lb{i} {{\n  local as {PEER_ASN};\n  neighbor {lb} as {LB_ASN};\n  \
             connect retry time 1;\n  ipv4 {{ import all; export none; }};\n}}\n"
        );
    }
    text
}

/// A BIRD in namespace `ns`, its control socket in `dir`.
struct Bird {
    socket: String,
    _process: KillOnDrop,
}

impl Bird {
    fn start(net: &Net, dir: &Path, ns: &str, config: &str) -> Bird {
        let conf = dir.join(format!("bird-{ns}.conf"));
        std::fs::write(&conf, config).unwrap();
        let socket = dir.join(format!("bird-{ns}.ctl")).display().to_string();
        let log = std::fs::File::create(dir.join(format!("bird-{ns}.log"))).unwrap();
        let process = KillOnDrop::spawn(
            Command::new("ip")
                .args(["netns", "exec", &net.ns(ns), "bird", "-f", "-c"])
                .arg(&conf)
                .args(["-s", &socket])
                .stderr(log),
        );
        let bird = Bird {
            socket,
            _process: process,
        };
        wait_for(&format!("BIRD in {ns}"), Duration::from_secs(10), || {
            bird.birdc(&["show", "status"])
                .contains("Daemon is up")
                .then_some(())
        });
        bird
    }

    fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new("birdc")
            .args(["-s", &self.socket])
            .args(args)
            .output()
            .expect("run birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The next hops of the routes this BIRD has for `prefix`, sorted.
    fn next_hops(&self, prefix: &str) -> Vec<String> {
        let text = self.birdc(&["show", "route", "for", prefix, "all"]);
        let mut hops: Vec<String> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("via "))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        hops.sort();
        hops.dedup();
        hops
    }
}

fn bird_installed() -> bool {
    Command::new("bird").arg("--version").output().is_ok()
}

#[test]
fn the_holder_announces_the_vip_over_bgp_and_the_route_follows_a_failover() {
    if !is_root() || !bird_installed() {
        eprintln!("SKIP the_holder_announces_the_vip_over_bgp_and_the_route_follows_a_failover: needs root (network namespaces) and bird (Debian's bird2)");
        return;
    }
    let scene = Scene::new(
        "lb-bgp",
        ("g", 2),
        &[("a", 1), ("b", 2), ("r", 3)],
        |n| n.host(100),
        &["lb-a", "lb-b"],
    );
    let (net, dir, vip) = (&scene.net, &scene.dir, &scene.vip);
    let prefix = format!("{vip}/32");
    let (a_ip, b_ip, peer_ip) = (net.host(1), net.host(2), net.host(3));

    let peer = Bird::start(net, dir, "r", &peer_bird_config(&peer_ip, &[&a_ip, &b_ip]));
    let _bird_a = Bird::start(net, dir, "a", &lb_bird_config(&a_ip, &[vip], &peer_ip));
    let _bird_b = Bird::start(net, dir, "b", &lb_bird_config(&b_ip, &[vip], &peer_ip));

    let mut a = scene.node("a", 1, "1");
    a.wait_holding(&scene, Duration::from_secs(10));
    let b = scene.node("b", 2, "1");
    wait_for(
        "the peer to learn the VIP via a",
        Duration::from_secs(20),
        || (peer.next_hops(&prefix) == [a_ip.clone()]).then_some(()),
    );
    let kernel_route = || {
        let out = netns::ip(&["-n", &net.ns("r"), "route", "show", &prefix]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let route = kernel_route();
    assert!(
        route.contains(&format!("via {a_ip}")),
        "the peer's kernel route: {route}"
    );
    scene.served_from("r", "the peer's request through a");

    // SIGTERM of a: its address goes, so its BIRD withdraws the route; b
    // takes the VIP and its BIRD announces it.
    a.process.terminate(Duration::from_secs(6));
    b.wait_holding(&scene, Duration::from_secs(3));
    wait_for(
        "the peer to learn the VIP via b only",
        Duration::from_secs(10),
        || (peer.next_hops(&prefix) == [b_ip.clone()]).then_some(()),
    );
    wait_for(
        "the peer's kernel route via b",
        Duration::from_secs(5),
        || {
            kernel_route()
                .contains(&format!("via {b_ip}"))
                .then_some(())
        },
    );
    scene.served_from("r", "the peer's request through b");

    // A restarted a follows b and announces nothing.
    a = scene.node("a", 1, "2");
    a.wait_following("lb-b");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(peer.next_hops(&prefix), [b_ip]);

    // b's node dies: its uc-lb is killed and its link goes down, so no TCP
    // reset tells the peer. a takes the VIP within the lease TTL; the peer
    // drops b's route when the 9 s hold time runs out, and goes to a.
    let mut b = b;
    b.kill();
    netns::ip_ok(&["-n", &net.ns("b"), "link", "set", "eth0", "down"]);
    let start = std::time::Instant::now();
    a.wait_holding(&scene, Duration::from_secs(TTL + 3));
    wait_for(
        "the peer to learn the VIP via a only",
        Duration::from_secs(14),
        || (peer.next_hops(&prefix) == [a_ip.clone()]).then_some(()),
    );
    let took = start.elapsed();
    eprintln!(
        "the peer routes the VIP to a {took:?} after b's node died (TTL {TTL} s, hold time 9 s)"
    );
    assert!(took <= Duration::from_secs(11), "took {took:?}");
    scene.served_from("r", "the peer's request through a after b died");
}
