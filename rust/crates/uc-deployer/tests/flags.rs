//! The binary run by hand from flags alone (no config file): it serves
//! /health, the cache's /nix-cache-info and the API from a real store;
//! without `--signing-key-file` it says so.

use std::process::Command;
use std::time::Duration;

use uc_testkit::{
    exit_1_stderr, free_port, http, wait_for, wait_for_port, Etcd, KillOnDrop, TestDir,
};

#[test]
fn runs_from_flags_alone() {
    let dir = TestDir::new("uc-deployer-flags");
    let etcd = Etcd::start(&dir.join("etcd"));
    let key = dir.join("cache.sec");
    let made = Command::new("nix-store")
        .args(["--generate-binary-cache-key", "uc-flags-1"])
        .arg(&key)
        .arg(dir.join("cache.pub"))
        .status()
        .expect("run nix-store --generate-binary-cache-key");
    assert!(
        made.success(),
        "nix-store --generate-binary-cache-key: {made}"
    );
    let port = free_port();
    let _deployer = KillOnDrop::spawn(
        Command::new(env!("CARGO_BIN_EXE_uc-deployer"))
            .args(["--store", &etcd.endpoint, "--node", "n1"])
            .args(["--http", &format!("127.0.0.1:{port}")])
            .arg("--signing-key-file")
            .arg(&key)
            .arg("--data-dir")
            .arg(dir.join("data")),
    );
    wait_for_port("uc-deployer", port);
    let (status, body) = http(port, "GET", "/health", "");
    assert_eq!(status, 200, "/health: {body}");
    let (status, body) = http(port, "GET", "/nix-cache-info", "");
    assert_eq!(status, 200, "/nix-cache-info: {body}");
    assert!(body.contains("StoreDir: /nix/store"), "{body}");
    // The API reads the store: an empty one has no services.
    let (status, body) = wait_for("/api/v1/services", Duration::from_secs(20), || {
        let answer = http(port, "GET", "/api/v1/services", "");
        (answer.0 == 200).then_some(answer)
    });
    assert_eq!(status, 200, "/api/v1/services: {body}");
}

#[test]
fn a_missing_signing_key_is_named() {
    let stderr = exit_1_stderr(
        Command::new(env!("CARGO_BIN_EXE_uc-deployer")).args(["--store", "http://127.0.0.1:1"]),
    );
    assert!(
        stderr.contains("uc-deployer: --signing-key-file is required with --store"),
        "the error names --signing-key-file: {stderr}"
    );
}
