//! Fixtures shared by the nix-agent tests: systems built offline with
//! builtins.derivation and /bin/sh, and uc-deployer's cache serving them.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use uc_deployer::cache::{Cache, LocalStore, SigningKey};
use uc_testkit::{Etcd, KillOnDrop};
use uc_types::{keys, ObservedSystem, SystemState};

pub fn ok(command: &mut Command) -> String {
    let out = command.output().expect("run (install nix-bin)");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Fixture systems: `switch-to-configuration` appends "<name> <action>" to
/// `<dir>/activations` and writes its name to `<dir>/running`; `bad` fails to
/// activate; `unhealthy` activates but the health check refuses it.
pub fn build_systems(dir: &Path) -> Vec<String> {
    build_switch_systems(
        "name: exit",
        &format!(
            r#"'#!/bin/sh\necho "{name} $1" >> {dir}/activations\necho {name} > {dir}/running\nexit {exit}\n'"#,
            dir = dir.display(),
            name = "${name}",
            exit = "${toString exit}",
        ),
        r#"(system "gen1" 0) (system "gen2" 0) (system "bad" 1) (system "unhealthy" 0) (system "unserved" 0)"#,
    )
}

/// Builds systems offline (builtins.derivation and /bin/sh): `systems` is a
/// list of calls to `system = <params>: derivation …`, whose
/// `switch-to-configuration` is what `printf <printf_args>` writes. Their
/// store paths, in order.
pub fn build_switch_systems(params: &str, printf_args: &str, systems: &str) -> Vec<String> {
    let expr = format!(
        r#"
      let
        system = {params}: derivation {{
          inherit name;
          system = builtins.currentSystem;
          builder = "/bin/sh";
          PATH = "/bin:/usr/bin";
          args = [ "-c" ''
            mkdir -p $out/bin
            printf {printf_args} > $out/bin/switch-to-configuration
            chmod +x $out/bin/switch-to-configuration
          '' ];
        }};
      in [ {systems} ]"#
    );
    let out = ok(Command::new("nix-build").args([
        "--no-out-link",
        "--option",
        "substituters",
        "",
        "-E",
        &expr,
    ]));
    out.lines().map(str::to_owned).collect()
}

/// `uc-nix-agent --config <config> --store-root <store_root> run`.
pub fn start_agent(config: &Path, store_root: &Path) -> KillOnDrop {
    KillOnDrop::spawn(
        Command::new(env!("CARGO_BIN_EXE_uc-nix-agent"))
            .arg("--config")
            .arg(config)
            .arg("--store-root")
            .arg(store_root)
            .arg("run"),
    )
}

/// What the agent of `node` reported in the store, once it parses.
pub fn observed(etcd: &Etcd, node: &str) -> Option<ObservedSystem> {
    etcd.get(&keys::observed_system(node))
        .and_then(|v| serde_json::from_str::<ObservedSystem>(&v).ok())
}

/// Asserts that the agent reported `state`, running `running`.
pub fn assert_runs(report: &ObservedSystem, state: SystemState, running: &str) {
    assert_eq!(
        (report.state, report.store_path.as_deref()),
        (state, Some(running)),
        "{report:?}"
    );
}

/// Asserts that the report's error mentions `what`.
pub fn assert_error_mentions(report: &ObservedSystem, what: &str) {
    assert!(
        report.error.as_deref().unwrap_or("").contains(what),
        "{report:?}"
    );
}

/// Writes `node`'s desired system (no rollout) with etcdctl.
pub fn desire(etcd: &Etcd, node: &str, path: &str, generation: u64) {
    let value = serde_json::json!({"storePath": path, "generation": generation, "rollout": null});
    etcd.ctl(&["put", &keys::desired_system(node), &value.to_string()]);
}

pub fn serve_cache(key: SigningKey, roots: Vec<String>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let cache = Arc::new(Cache::new(key, LocalStore::default()));
            cache.set_roots(&roots).await.expect("closures");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            axum::serve(listener, uc_deployer::http::router(cache))
                .await
                .expect("serve");
        });
    });
    format!("http://{}", rx.recv().expect("cache started"))
}

pub fn activations(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("activations"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn test_dir(name: &str) -> uc_testkit::TestDir {
    uc_testkit::TestDir::new(name)
}

/// `nix-store --generate-binary-cache-key`: (secret key file, public key).
pub fn key_pair(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let (sec, public) = (
        dir.join(format!("{name}.sec")),
        dir.join(format!("{name}.pub")),
    );
    ok(Command::new("nix-store")
        .arg("--generate-binary-cache-key")
        .arg(name)
        .arg(&sec)
        .arg(&public));
    let public = std::fs::read_to_string(public)
        .expect("pub")
        .trim()
        .to_owned();
    (sec, public)
}
