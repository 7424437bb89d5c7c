//! The binary run by hand from flags alone (no config file): it serves
//! /health and heartbeats into a real store; without `--node` it says so.

use std::process::{Command, Stdio};
use std::time::Duration;

use uc_testkit::{
    exit_1_stderr, free_port, http, kill_node_agent_instances, wait_for, wait_for_port, Etcd,
    KillOnDrop, TestDir,
};
use uc_types::keys;

#[test]
fn runs_from_flags_alone() {
    let dir = TestDir::new("uc-node-agent-flags");
    let etcd = Etcd::start(&dir.join("etcd"));
    let port = free_port();
    let state = dir.join("state");
    let _agent = KillOnDrop::spawn(
        Command::new(env!("CARGO_BIN_EXE_uc-node-agent"))
            .args(["--store", &etcd.endpoint, "--node", "n1"])
            .args(["--http", &format!("127.0.0.1:{port}")])
            .args(["--backend", "process", "--state-dir"])
            .arg(&state),
    );
    wait_for_port("uc-node-agent", port);
    let (status, body) = http(port, "GET", "/health", "");
    assert_eq!(status, 200, "/health: {body}");
    assert!(
        body.contains("\"node\":\"n1\""),
        "/health names the node: {body}"
    );
    wait_for(
        "n1's heartbeat in the store",
        Duration::from_secs(20),
        || etcd.get(&keys::heartbeat("n1")),
    );
    assert!(
        state.is_dir(),
        "--state-dir {} was not made",
        state.display()
    );
    kill_node_agent_instances(&state);
}

#[test]
fn a_missing_node_is_named() {
    let stderr = exit_1_stderr(
        Command::new(env!("CARGO_BIN_EXE_uc-node-agent"))
            .args(["--store", "http://127.0.0.1:1"])
            .stdin(Stdio::null()),
    );
    assert!(
        stderr.contains("uc-node-agent: --node is required with --store"),
        "the error names --node: {stderr}"
    );
}
