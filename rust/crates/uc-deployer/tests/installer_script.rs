//! The installer ISO's phone-home script (profiles/installer/uc-install.sh),
//! run for real with bash, curl and jq against the deployer's phone-home
//! endpoint on a real etcd, in dry-run mode (it stops before disko).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use uc_deployer::cache::{Cache, LocalStore, SigningKey};
use uc_deployer::deploy::{deploy, DeployRequest};
use uc_deployer::{app, App, Store};
use uc_testkit::{free_port, Etcd, TestDir};

const TOKEN: &str = "installer-test-token";
/// Signs the (empty) binary cache the deployer serves beside phone-home.
const CACHE_KEY: &str = "uc-cache-1:dIbf+X4xryAERjId/qOdY5+3cl+5i1gbmnd0FPQgVmNAPu2irZV60PJEx74uWgcg8BBj1ewQOeI9NnZjtOyI8A==";
const SYSTEM: &str = "/nix/store/00000000000000000000000000000000-nixos-system-worker1";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../profiles/installer/uc-install.sh"
);

/// The MAC addresses the script reports: those of physical interfaces.
fn physical_macs() -> Vec<String> {
    let mut macs = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        if entry.path().join("device").exists() {
            let mac = std::fs::read_to_string(entry.path().join("address")).unwrap();
            macs.push(mac.trim().to_owned());
        }
    }
    macs
}

/// Runs the script with `cmdline` as the kernel command line; kills it
/// once stderr contains `until` (if given) or after 20 s.
fn run_script(dir: &Path, cmdline: &str, until: Option<&str>) -> (Option<i32>, String, String) {
    let cmdline_file = dir.join("cmdline");
    std::fs::write(&cmdline_file, cmdline).unwrap();
    let run = dir.join("run");
    let mut child = Command::new("bash")
        .arg(SCRIPT)
        .env("UC_INSTALL_CMDLINE", &cmdline_file)
        .env("UC_INSTALL_CONFIG", dir.join("no-config.json"))
        .env("UC_INSTALL_RUN", &run)
        .env("UC_INSTALL_RETRY_SECONDS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    let mut stderr = child.stderr.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = lines.send(all.clone());
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut err = String::new();
    let code = loop {
        while let Ok(text) = seen.try_recv() {
            err = text;
        }
        if let Some(status) = child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(100));
            while let Ok(text) = seen.try_recv() {
                err = text;
            }
            break status.code();
        }
        if until.is_some_and(|u| err.contains(u)) || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    (code, out, err)
}

#[test]
fn the_installer_phones_home_and_gets_its_plan() {
    let dir = TestDir::new("uc-installer-script");
    let etcd = Etcd::start(&dir.join("etcd"));
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let port = free_port();
    let endpoint = etcd.endpoint.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime
        .block_on(etcd_client::Client::connect([endpoint], None))
        .unwrap();
    let store = Store::default();
    let _ = store.set(client.clone());
    let key = SigningKey::parse("the test key", CACHE_KEY).unwrap();
    let app = app(App {
        store,
        cache: std::sync::Arc::new(Cache::new(key, LocalStore::default())),
        enrollment_token_file: token_file,
        trusted_public_keys: vec!["uc-cache-1:QD7toq2VetDyRMe+LloHIPAQY9XsEDniPTZ2Y7TsiPA=".into()],
    });
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
        .unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await });
    let deployer = format!("uc.deployer=http://127.0.0.1:{port}");

    // Nothing deployed yet: the machine waits, listed as pending.
    let (code, _, err) = run_script(
        &dir,
        &format!("quiet {deployer} uc.token={TOKEN} uc.dry-run=1"),
        Some("pending"),
    );
    assert_eq!(code, None, "it keeps waiting: {err}");
    assert!(
        err.contains("this machine is not declared yet (pending); facts: {"),
        "{err}"
    );

    // A wrong token ends the script with the way out.
    let (code, _, err) = run_script(&dir, &format!("{deployer} uc.token=guess"), None);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("enrollment token refused; boot with the right uc.token"),
        "{err}"
    );

    let macs = physical_macs();
    if macs.is_empty() {
        println!("SKIP: this machine has no physical network interface to declare; the plan part did not run");
        return;
    }
    // Declare this machine as worker1 (by its MACs) and deploy a system for it.
    let mut manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../hosts/ha/manifest.json"
        ))
        .unwrap(),
    )
    .unwrap();
    manifest["nodes"]["worker1"]["identity"]["macAddresses"] = serde_json::json!(macs);
    let systems = BTreeMap::from([("worker1".to_owned(), SYSTEM.to_owned())]);
    let mut c = client.clone();
    runtime
        .block_on(deploy(&mut c, DeployRequest { manifest, systems }))
        .unwrap();

    // The token from the file, as an operator may provide it.
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::write(dir.join("run/enrollment-token"), format!("{TOKEN}\n")).unwrap();
    let (code, out, err) = run_script(&dir, &format!("{deployer} uc.dry-run=1"), None);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("this machine is node worker1; system {SYSTEM}")),
        "{err}"
    );
    let plan: serde_json::Value = serde_json::from_str(&out).expect("the plan as JSON");
    assert_eq!(plan["system"], SYSTEM);
    assert_eq!(plan["node"], "worker1");
    assert_eq!(
        plan["disko"]["disk"]["main"]["device"],
        "/dev/disk/by-id/nvme-worker1"
    );
    // The plan is kept where the install steps read it.
    let kept = std::fs::read_to_string(dir.join("run/plan.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&kept).unwrap(),
        plan
    );
}
