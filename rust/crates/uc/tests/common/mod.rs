//! Shared by the CLI tests: run the built `uc` binary; serve the deployer's
//! API in-process on a real etcd.
#![allow(dead_code)]

use std::process::Command;

use uc_deployer::cache::{Cache, LocalStore, SigningKey};

/// Signs the (empty) binary cache the deployer serves beside its API.
const CACHE_KEY: &str = "uc-cache-1:dIbf+X4xryAERjId/qOdY5+3cl+5i1gbmnd0FPQgVmNAPu2irZV60PJEx74uWgcg8BBj1ewQOeI9NnZjtOyI8A==";

/// Runs `uc` with `args`: (success, stdout, stderr).
pub fn uc(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_uc"))
        .args(args)
        .output()
        .expect("run uc");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Serves the deployer's API on a free port, on its own runtime thread,
/// connected to the store at `endpoint`; `also` runs first inside that
/// runtime (to spawn daemons beside it). Returns the deployer's URL.
pub fn serve_deployer_api(endpoint: String, also: impl FnOnce(&str) + Send + 'static) -> String {
    let port = uc_testkit::free_port();
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async move {
                let client = etcd_client::Client::connect([endpoint.clone()], None)
                    .await
                    .expect("etcd");
                let store = uc_deployer::Store::default();
                let _ = store.set(client);
                also(&endpoint);
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("bind");
                ready.send(()).expect("ready");
                let key = SigningKey::parse("the test key", CACHE_KEY).expect("key");
                let app = uc_deployer::app(uc_deployer::App {
                    store,
                    cache: std::sync::Arc::new(Cache::new(key, LocalStore::default())),
                    enrollment_token_file: "/nonexistent/enrollment-token".into(),
                    trusted_public_keys: vec![],
                });
                axum::serve(listener, app).await.expect("serve");
            });
    });
    started.recv().expect("deployer API started");
    format!("http://127.0.0.1:{port}")
}
