//! End to end against a real etcd: uc-deployer (cache, API, rollout engine)
//! and three nix-agents converge to generation 1, roll generation 2 out in
//! waves across a deployer restart, and stop a bad generation at the canary,
//! which is rolled back and reverted.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{build_systems, key_pair, test_dir};
use uc_deployer::cache::{Cache, LocalStore, SigningKey};
use uc_nix_agent::nix::NixSystem;
use uc_nix_agent::switch::Switcher;
use uc_testkit::{free_port, http, Etcd};
use uc_types::{
    keys, NixAgentConfig, ObservedSystem, RolloutRecord, RolloutState, SwitchAction, SystemState,
};

fn etcd_get<T: serde::de::DeserializeOwned>(etcd: &Etcd, key: &str) -> Option<T> {
    serde_json::from_str(&etcd.get(key)?).ok()
}

/// A task on its own runtime, stopped (and its runtime dropped) on drop.
struct Background {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn start<F, Fut>(f: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                tokio::select! {
                    () = f() => {}
                    _ = stopped => {}
                }
            });
        });
        Background {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// uc-deployer's cache, API, dashboard and rollout engine, in-process;
/// returns once the API accepts connections.
fn deployer(endpoint: &str, cache: Arc<Cache>, port: u16) -> Background {
    let endpoint = endpoint.to_owned();
    let running = Background::start(move || async move {
        let client = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        let store = uc_deployer::api::Store::default();
        let _ = store.set(client.clone());
        let app = uc_deployer::http::router(cache.clone())
            .merge(uc_deployer::api::router(store.clone()))
            .merge(uc_deployer::dashboard::router(store));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        uc_deployer::rollout::run(client, cache).await.unwrap();
    });
    uc_testkit::wait_for("the deployer API", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    running
}

fn agent(node: &str, dir: &Path, endpoint: &str, cache_url: &str, public: &str) -> Background {
    let config = NixAgentConfig {
        schema_version: 1,
        cluster: "ha".into(),
        node: node.into(),
        http_listen: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        store_endpoints: vec![endpoint.into()],
        profile: dir
            .join(format!("{node}/profiles/system"))
            .display()
            .to_string(),
        state_dir: dir.join(format!("{node}/state")).display().to_string(),
        cache_urls: vec![cache_url.into()],
        trusted_public_keys: vec![public.into()],
        switch_action: SwitchAction::Switch,
        health_gate_timeout_seconds: 5,
        health_checks: vec![],
    };
    let switcher = Switcher {
        nix: NixSystem {
            profile: config.profile.clone().into(),
            store_root: Some(dir.join(format!("{node}/store"))),
            cache_urls: config.cache_urls.clone(),
            trusted_public_keys: config.trusted_public_keys.clone(),
        },
        state_dir: config.state_dir.clone().into(),
        action: "switch".into(),
        checks: vec![],
        health_gate: Duration::from_secs(5),
    };
    Background::start(move || async move {
        uc_nix_agent::daemon::run(config, switcher, std::future::pending())
            .await
            .unwrap();
    })
}

#[test]
fn rolls_out_in_waves_and_stops_a_bad_generation_at_the_canary() {
    let dir = test_dir("uc-rollout-e2e-test");
    let systems = build_systems(&dir);
    let [gen1, gen2, bad, ..] = systems.as_slice() else {
        panic!("systems: {systems:?}");
    };
    let (secret, public) = key_pair(&dir, "uc-rollout-test-1");

    let etcd = Etcd::start(&dir.join("etcd"));
    let endpoint = etcd.endpoint.clone();

    let cache = Arc::new(Cache::new(
        SigningKey::load(&secret).unwrap(),
        LocalStore::default(),
    ));
    let port = free_port();
    let mut engine = Some(deployer(&endpoint, cache.clone(), port));
    let cache_url = format!("http://127.0.0.1:{port}");
    let nodes = ["worker1", "edge1", "worker2"];
    let _agents: Vec<Background> = nodes
        .iter()
        .map(|n| agent(n, &dir, &endpoint, &cache_url, &public))
        .collect();

    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../hosts/ha/manifest.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let deploy = |system: &str| {
        let systems: serde_json::Map<String, serde_json::Value> = nodes
            .iter()
            .map(|n| ((*n).to_owned(), system.into()))
            .collect();
        http(
            port,
            "POST",
            "/api/v1/deploy",
            &serde_json::json!({"manifest": manifest, "systems": systems}).to_string(),
        )
    };
    let rollout = || etcd_get::<RolloutRecord>(&etcd, &keys::rollout_current()).unwrap();
    let finished = |id: u64| {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let r = rollout();
            if r.id == id && !matches!(r.state, RolloutState::Running) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "rollout {id} still running: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let observed =
        |node: &str| etcd_get::<ObservedSystem>(&etcd, &keys::observed_system(node)).unwrap();

    // Generation 1 everywhere.
    let (status, body) = deploy(gen1);
    assert_eq!(status, 201, "{body}");
    let r = finished(1);
    assert_eq!(r.state, RolloutState::Succeeded, "{r:?}");
    assert_eq!(
        r.waves,
        [["worker1"], ["edge1"], ["worker2"]],
        "canary first, then batches of maxUnavailable"
    );
    for node in nodes {
        let o = observed(node);
        assert_eq!(
            (o.state, o.store_path.as_ref()),
            (SystemState::Healthy, Some(gen1)),
            "{node}: {o:?}"
        );
    }

    // Generation 2, with the deployer restarted after the first wave.
    let (status, body) = deploy(gen2);
    assert_eq!(status, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while rollout().wave < 1 {
        assert!(
            Instant::now() < deadline,
            "first wave of rollout 2 never finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(engine.take());
    engine = Some(deployer(&endpoint, cache.clone(), port));
    let r = finished(2);
    assert_eq!(r.state, RolloutState::Succeeded, "{r:?}");
    for node in nodes {
        assert_eq!(observed(node).store_path.as_ref(), Some(gen2), "{node}");
    }

    // A bad generation stops at the canary: rolled back by its agent,
    // reverted by the deployer, and the other nodes are never touched.
    let (status, body) = deploy(bad);
    assert_eq!(status, 201, "{body}");
    let r = finished(3);
    assert_eq!(r.state, RolloutState::Failed, "{r:?}");
    let error = r.error.clone().unwrap_or_default();
    assert!(error.starts_with("wave 1: worker1: RolledBack"), "{error}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = observed("worker1");
        if o.generation == r.revert_generation() && o.state == SystemState::Healthy {
            assert_eq!(o.store_path.as_ref(), Some(gen2));
            break;
        }
        assert!(Instant::now() < deadline, "worker1 was not reverted: {o:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for node in ["edge1", "worker2"] {
        let o = observed(node);
        assert_eq!(
            (o.generation, o.store_path.as_ref()),
            (4, Some(gen2)),
            "{node} must not be touched: {o:?}"
        );
    }

    // Refusals leave the state alone.
    let (status, body) = http(port, "POST", "/api/v1/deploy", "{\"manifest\": 1}");
    assert_eq!(status, 400, "{body}");
    let systems = serde_json::json!({"nope": gen1});
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/deploy",
        &serde_json::json!({"manifest": manifest, "systems": systems}).to_string(),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("no node \\\"nope\\\" in the manifest"),
        "{body}"
    );
    let (status, body) = http(port, "POST", "/api/v1/rollout/resume", "");
    assert_eq!(status, 409, "{body}");
    assert_eq!(rollout().id, 3);

    // The dashboard, in a real (headless) browser: the nodes with their
    // systems and states, and the failed rollout.
    let url = format!("http://127.0.0.1:{port}/");
    let dom = chromium(&dir, &["--dump-dom", &url]);
    assert!(dom.contains("<h1>Cluster ha</h1>"), "{dom}");
    for node in nodes {
        assert!(
            dom.contains(&format!("<td>{node}</td>")),
            "{node} missing: {dom}"
        );
    }
    assert!(dom.contains("gen2 ("), "observed systems are shown: {dom}");
    assert!(
        dom.contains("Rollout 3: <b>failed</b>, wave 1 of 3"),
        "{dom}"
    );
    assert!(dom.contains("wave 1: worker1: RolledBack"), "{dom}");
    assert!(dom.contains("<li>worker1 — failed</li>"), "{dom}");
    let screenshot = dir.join("dashboard.png");
    chromium(
        &dir,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,900",
            &url,
        ],
    );
    let png = std::fs::read(&screenshot).expect("screenshot taken");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot: {} bytes",
        png.len()
    );
    let kept = std::env::temp_dir().join("uc-dashboard.png");
    std::fs::copy(&screenshot, &kept).expect("keep the screenshot");
    eprintln!("dashboard screenshot: {}", kept.display());
    drop(engine);
}

/// Debian's chromium, headless, with a fresh profile and no background traffic.
fn chromium(dir: &Path, args: &[&str]) -> String {
    let profile = dir.join("chromium-profile");
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("run chromium (install Debian's chromium)");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
