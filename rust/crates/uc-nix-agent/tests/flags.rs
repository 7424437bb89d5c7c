//! The binary run by hand from flags alone (no config file): it serves
//! /health and reports its observed state to a real store (here, that the
//! desired system written there is unreadable); without `--node` it says so.

use std::process::Command;
use std::time::Duration;

use uc_testkit::{
    exit_1_stderr, free_port, http, wait_for, wait_for_port, Etcd, KillOnDrop, TestDir,
};
use uc_types::{keys, ObservedSystem, SystemState};

#[test]
fn runs_from_flags_alone() {
    let dir = TestDir::new("uc-nix-agent-flags");
    let etcd = Etcd::start(&dir.join("etcd"));
    let port = free_port();
    let _agent = KillOnDrop::spawn(
        Command::new(env!("CARGO_BIN_EXE_uc-nix-agent"))
            .args(["--store", &etcd.endpoint, "--node", "n1"])
            .args(["--http", &format!("127.0.0.1:{port}")])
            .arg("--profile")
            .arg(dir.join("profiles/system"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("run"),
    );
    wait_for_port("uc-nix-agent", port);
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
    let stderr = exit_1_stderr(Command::new(env!("CARGO_BIN_EXE_uc-nix-agent")).args([
        "--store",
        "http://127.0.0.1:1",
        "run",
    ]));
    assert!(
        stderr.contains("uc-nix-agent: --node is required with --store"),
        "the error names --node: {stderr}"
    );
}
