//! The binary run by hand from flags alone (no config file): it serves
//! /health and takes the leader key in a real store.

use std::process::Command;
use std::time::Duration;

use uc_testkit::{
    exit_1_stderr, free_port, http, wait_for, wait_for_port, Etcd, KillOnDrop, TestDir,
};
use uc_types::keys;

#[test]
fn runs_from_flags_alone() {
    let dir = TestDir::new("uc-scheduler-flags");
    let etcd = Etcd::start(&dir.join("etcd"));
    let port = free_port();
    // The shared flags are accepted after the subcommand too.
    let _scheduler = KillOnDrop::spawn(
        Command::new(env!("CARGO_BIN_EXE_uc-scheduler"))
            .args(["run", "--store", &etcd.endpoint, "--node", "n1"])
            .args(["--http", &format!("127.0.0.1:{port}")]),
    );
    wait_for_port("uc-scheduler", port);
    let (status, body) = http(port, "GET", "/health", "");
    assert_eq!(status, 200, "/health: {body}");
    let leader = wait_for("the leader key", Duration::from_secs(20), || {
        etcd.get(&keys::scheduler_leader())
    });
    assert!(
        leader.contains("\"n1-"),
        "the holder is named for --node: {leader}"
    );
}

#[test]
fn an_absent_config_file_is_named_with_exit_1() {
    // Without --store the config file is read; naming one that is absent
    // must say which file, as before.
    let dir = TestDir::new("uc-scheduler-flags-noconfig");
    let absent = dir.join("absent.json");
    let stderr = exit_1_stderr(
        Command::new(env!("CARGO_BIN_EXE_uc-scheduler"))
            .arg("--config")
            .arg(&absent)
            .arg("plan"),
    );
    assert!(
        stderr.contains(&absent.display().to_string()),
        "the error names the file: {stderr}"
    );
}
