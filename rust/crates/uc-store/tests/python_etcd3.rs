//! python-etcd3 (PyPI, the most used Python client) against a 3-member
//! uc-store. The interpreter with etcd3 installed comes from
//! `UC_PYTHON_ETCD3` or scripts/check's venv (/var/tmp/uc-py); without it
//! the test prints a SKIP line.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Cluster, Kind};

#[test]
fn python_etcd3_smoke() {
    let python = std::env::var_os("UC_PYTHON_ETCD3")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/uc-py/bin/python"));
    let usable = Command::new(&python)
        .args(["-c", "import etcd3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !usable {
        eprintln!(
            "SKIP: python-etcd3 smoke test: {} cannot import etcd3 (scripts/check installs it)",
            python.display()
        );
        return;
    }
    let cluster = Cluster::start(Kind::UcStore, 3, "python-etcd3", &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/etcd3_smoke.py");
    let output = Command::new(&python)
        .arg(script)
        .args([&cluster.members[1].ip, "2379", "3"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python-etcd3 smoke failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
