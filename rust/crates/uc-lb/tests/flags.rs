//! uc-lb's start-up: --help says how to run it by hand; a bad flag or a
//! missing config file is named on stderr with exit 1; from its config
//! file it serves only the listeners the file names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{curl, listener, port, Backend};
use serde_json::json;
use uc_testkit::{free_port, wait_for, Etcd, KillOnDrop, TestDir};
use uc_types::keys;

fn uc_lb(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_uc-lb"))
        .args(args)
        .output()
        .expect("run uc-lb")
}

#[test]
fn help_and_start_up_errors() {
    let help = uc_lb(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for expected in [
        "--store",
        "--node",
        "--drain-timeout",
        "--client-timeout",
        "uc-lb --store http://127.0.0.1:2379 --node edge1 --http 127.0.0.1:9154",
    ] {
        assert!(
            text.contains(expected),
            "--help lacks {expected:?}:\n{text}"
        );
    }
    let missing = uc_lb(&["--config", "/nonexistent/lb.json"]);
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        err.starts_with("uc-lb: ") && err.contains("/nonexistent/lb.json"),
        "{err}"
    );
    let bad = uc_lb(&["--store", "http://127.0.0.1:1", "--drain-timeout", "0"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        err.contains("--drain-timeout must be a positive number of seconds"),
        "{err}"
    );
}

#[test]
fn the_config_file_names_the_listeners() {
    let dir = TestDir::new("uc-lb-config");
    let etcd = Etcd::start(&dir.join("store"));
    let backend = Backend::http("a");
    let (served, skipped, http) = (port(), port(), free_port());
    for (name, p) in [("www", served), ("admin", skipped)] {
        let value = listener("http", p, &[backend.addr], json!({}));
        etcd.ctl(&["put", &keys::lb_listener(name), &value.to_string()]);
    }
    let config = json!({
        "schemaVersion": 1, "cluster": "t", "node": "edge1",
        "httpListen": format!("127.0.0.1:{http}"),
        "storeEndpoints": [etcd.endpoint], "listeners": ["www"]
    });
    let path = dir.join("lb.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let _lb = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_uc-lb"))
            .arg("--config")
            .arg(&path)
            .stderr(std::fs::File::create(dir.join("uc-lb.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let (code, body) = wait_for("the www listener", Duration::from_secs(8), || {
        curl(&["-m", "2", &format!("http://127.0.0.1:{served}/")]).filter(|(c, _)| *c == 200)
    });
    assert_eq!((code, body.split_whitespace().next()), (200, Some("a")));
    assert!(
        curl(&["-m", "2", &format!("http://127.0.0.1:{skipped}/")]).is_none(),
        "a listener the file does not name answers"
    );
    assert!(etcd
        .get(&keys::lb_listener_status("edge1", "www"))
        .is_some());
    assert!(etcd
        .get(&keys::lb_listener_status("edge1", "admin"))
        .is_none());
}
