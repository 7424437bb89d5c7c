//! Refusals at start: each names what is wrong and changes nothing on disk.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use uc_testkit::TestDir;

fn run(dir: &std::path::Path, ip: &str, token: &str, extra: &[&str]) -> (bool, String) {
    let peer = format!("http://{ip}:2380");
    let client = format!("http://{ip}:2379");
    let mut command = Command::new(env!("CARGO_BIN_EXE_uc-store"));
    command
        .args(["--name", "m0", "--data-dir"])
        .arg(dir)
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("m0={peer}")])
        .args(["--initial-cluster-token", token])
        .args(extra);
    // A member that starts is stopped by the test after a moment.
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.success(), stderr);
        }
        if std::time::Instant::now() > deadline {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            let output = child.wait_with_output().unwrap();
            return (true, String::from_utf8_lossy(&output.stderr).into_owned());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn ip(n: u32) -> String {
    format!("127.{}.{}.1", 20 + std::process::id() % 200, 200 + n)
}

#[test]
fn a_foreign_non_empty_data_dir_is_refused() {
    let dir = TestDir::new("startup-foreign");
    std::fs::create_dir_all(&*dir).unwrap();
    std::fs::write(dir.join("important.txt"), "not ours").unwrap();
    let (ok, stderr) = run(&dir, &ip(1), "t", &[]);
    assert!(!ok);
    assert!(
        stderr.contains("not empty and not a uc-store data dir"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&*dir).unwrap().count(),
        1,
        "nothing written"
    );
}

#[test]
fn a_data_dir_of_another_cluster_is_refused_by_cluster_id() {
    let dir = TestDir::new("startup-mismatch");
    let (ok, _) = run(&dir, &ip(2), "first", &[]);
    assert!(ok, "the first start works");
    let (ok, stderr) = run(&dir, &ip(2), "second", &[]);
    assert!(!ok);
    assert!(stderr.contains("cluster-id mismatch"), "{stderr}");
    assert!(
        stderr.contains("\"first\"") && stderr.contains("\"second\""),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_is_named() {
    let dir = TestDir::new("startup-port");
    let address = ip(3);
    let _taken = std::net::TcpListener::bind(format!("{address}:2379")).unwrap();
    let (ok, stderr) = run(&dir, &address, "t", &[]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "cannot listen on http://{address}:2379: address already in use"
        )),
        "{stderr}"
    );
    assert!(
        !dir.join("raft.redb").exists(),
        "nothing but the identity is written before the ports are bound"
    );
}

#[test]
fn bad_flags_are_explained() {
    let dir = TestDir::new("startup-flags");
    let (ok, stderr) = run(&dir, &ip(4), "t", &["--initial-cluster-state", "old"]);
    assert!(!ok);
    assert!(
        stderr.contains("expected \"new\" or \"existing\""),
        "{stderr}"
    );
    let (ok, stderr) = run(
        &dir,
        &ip(4),
        "t",
        &["--heartbeat-interval", "500", "--election-timeout", "400"],
    );
    assert!(!ok);
    assert!(
        stderr.contains("must be greater than --heartbeat-interval"),
        "{stderr}"
    );
}
