//! The binary run by hand from flags alone (no config file): it serves
//! /health and reports its observed state to a real store (here, that the
//! desired system written there is unreadable); without `--node` it says so.

use std::process::Command;
use std::time::Duration;

use uc_testkit::{free_port, http, wait_for, Etcd, KillOnDrop, TestDir};
use uc_types::{keys, ObservedSystem, SystemState};

#[test]
fn runs_from_flags_alone() {
    let dir = TestDir::new("uc-nix-agent-flags");
    let etcd = Etcd::start(&dir.join("etcd"));
    let port = free_port();
    let _agent = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_uc-nix-agent"))
            .args(["--store", &etcd.endpoint, "--node", "n1"])
            .args(["--http", &format!("127.0.0.1:{port}")])
            .arg("--profile")
            .arg(dir.join("profiles/system"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("run")
            .spawn()
            .expect("start uc-nix-agent"),
    );
    wait_for("uc-nix-agent's /health", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let (status, body) = http(port, "GET", "/health", "");
    assert_eq!(status, 200, "/health: {body}");

    etcd.ctl(&["put", &keys::desired_system("n1"), "not a system"]);
    let observed = wait_for("n1's observed system", Duration::from_secs(20), || {
        etcd.get(&keys::observed_system("n1"))
    });
    let observed: ObservedSystem = serde_json::from_str(&observed).expect("observed JSON");
    assert_eq!(observed.state, SystemState::Failed, "{observed:?}");
}

#[test]
fn a_missing_node_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_uc-nix-agent"))
        .args(["--store", "http://127.0.0.1:1", "run"])
        .output()
        .expect("run uc-nix-agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {stderr}");
    assert!(
        stderr.contains("uc-nix-agent: --node is required with --store"),
        "the error names --node: {stderr}"
    );
}
