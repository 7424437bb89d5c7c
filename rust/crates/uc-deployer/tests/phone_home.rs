//! Phone-home against a real etcd holding a deployed manifest (hosts/ha):
//! a known machine gets its plan, an unknown one is listed as pending, bad
//! tokens and ambiguous facts are refused.

use std::collections::BTreeMap;

use serde_json::json;
use uc_deployer::cache::{Cache, LocalStore, SigningKey};
use uc_deployer::deploy::{deploy, DeployRequest};
use uc_deployer::{app, App, Store};
use uc_testkit::{free_port, Etcd};

const TOKEN: &str = "s3cret-enrollment-token";
/// Signs the (empty) binary cache the deployer serves beside phone-home.
const CACHE_KEY: &str = "uc-cache-1:dIbf+X4xryAERjId/qOdY5+3cl+5i1gbmnd0FPQgVmNAPu2irZV60PJEx74uWgcg8BBj1ewQOeI9NnZjtOyI8A==";
const SYSTEM: &str = "/nix/store/00000000000000000000000000000000-nixos-system-worker1";

fn post(port: u16, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    use uc_http::header::{HeaderValue, AUTHORIZATION};
    let mut request = uc_http::Request::post(format!("http://127.0.0.1:{port}/api/v1/phone-home"))
        .json(body.to_owned());
    if let Some(token) = token {
        let auth = HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value");
        request = request.header(AUTHORIZATION, auth);
    }
    let response = request.send_blocking().expect("phone-home answers");
    (
        response.status.as_u16(),
        serde_json::from_str(&response.text()).unwrap_or(serde_json::Value::Null),
    )
}

/// A 409 answer whose error says `reason`.
fn assert_conflict((status, body): (u16, serde_json::Value), reason: &str) {
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains(reason),
        "{body}"
    );
}

#[test]
fn known_machines_get_plans_and_unknown_ones_wait() {
    let dir = std::env::temp_dir().join(format!("uc-phone-home-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let etcd = Etcd::start(&dir.join("etcd"));
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token");
    let port = free_port();
    let endpoint = etcd.endpoint.clone();
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async move {
                let mut client = etcd_client::Client::connect([endpoint], None)
                    .await
                    .expect("etcd");
                let manifest: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/../../../hosts/ha/manifest.json"
                    ))
                    .expect("golden"),
                )
                .expect("json");
                let systems = BTreeMap::from([("worker1".to_owned(), SYSTEM.to_owned())]);
                deploy(&mut client, DeployRequest { manifest, systems })
                    .await
                    .expect("deploy");
                let store = Store::default();
                let _ = store.set(client);
                let key = SigningKey::parse("the test key", CACHE_KEY).expect("key");
                let app = app(App {
                    store,
                    cache: std::sync::Arc::new(Cache::new(key, LocalStore::default())),
                    enrollment_token_file: token_file,
                    trusted_public_keys: vec![
                        "uc-cache-1:QD7toq2VetDyRMe+LloHIPAQY9XsEDniPTZ2Y7TsiPA=".into(),
                    ],
                });
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("bind");
                ready.send(()).expect("ready");
                axum::serve(listener, app).await.expect("serve");
            });
    });
    started.recv().expect("started");

    let worker1 = json!({"macAddresses": ["52:54:00:01:00:21".to_uppercase()], "dmiSerial": null, "disks": ["/dev/nvme0n1"]}).to_string();

    // The import wrote the declared specs the other daemons watch.
    let spec = etcd
        .get("/uc/v1/services/web/spec")
        .expect("service spec written");
    assert!(spec.contains("\"replicas\":2"), "{spec}");
    assert!(etcd.get("/uc/v1/dns/zones/ha.test").is_some());
    assert!(etcd.get("/uc/v1/lb/listeners/www").is_some());

    // Tokens: missing or wrong is refused.
    assert_eq!(post(port, None, &worker1).0, 401);
    let (status, body) = post(port, Some("guess"), &worker1);
    assert_eq!(status, 401, "{body}");

    // A declared machine, by MAC (case does not matter): its plan.
    let (status, plan) = post(port, Some(TOKEN), &worker1);
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["node"], "worker1");
    assert_eq!(plan["system"], SYSTEM);
    assert_eq!(
        plan["disko"]["disk"]["main"]["device"],
        "/dev/disk/by-id/nvme-worker1"
    );
    assert_eq!(
        plan["disko"]["lvm_vg"]["pool"]["lvs"]["varlib"]["content"]["mountpoint"],
        "/var/lib"
    );
    assert_eq!(
        plan["cacheUrls"],
        json!([
            "http://10.1.0.11:7480",
            "http://10.1.0.12:7480",
            "http://10.1.0.13:7480"
        ])
    );
    assert_eq!(plan["storeEndpoints"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        plan["trustedPublicKeys"][0],
        "uc-cache-1:QD7toq2VetDyRMe+LloHIPAQY9XsEDniPTZ2Y7TsiPA="
    );

    // Declared by DMI serial, but nothing deployed for it yet.
    let edge = json!({"macAddresses": [], "dmiSerial": "EDGE-0001"}).to_string();
    assert_conflict(
        post(port, Some(TOKEN), &edge),
        "no system deployed for node edge1",
    );

    // Facts matching two nodes: refused, never guessed.
    let both = json!({"macAddresses": ["52:54:00:01:00:21"], "dmiSerial": "EDGE-0001"}).to_string();
    assert_conflict(
        post(port, Some(TOKEN), &both),
        "match several nodes (edge1, worker1)",
    );

    // An unknown machine is recorded as pending, and listed.
    let stranger =
        json!({"macAddresses": ["52:54:00:99:99:99"], "dmiSerial": "X1", "disks": ["/dev/sda"]})
            .to_string();
    let (status, body) = post(port, Some(TOKEN), &stranger);
    assert_eq!(
        (status, body["pending"].as_str()),
        (202, Some("52-54-00-99-99-99")),
        "{body}"
    );
    let listed = etcd
        .get("/uc/v1/pending/52-54-00-99-99-99")
        .expect("pending machine stored");
    assert!(listed.contains("\"/dev/sda\""), "{listed}");
    let (status, list) = uc_testkit::http(port, "GET", "/api/v1/pending", "");
    assert_eq!(status, 200);
    assert!(list.contains("52-54-00-99-99-99"), "{list}");

    // Nothing to recognise a machine by.
    let (status, _) = post(port, Some(TOKEN), &json!({"macAddresses": []}).to_string());
    assert_eq!(status, 400);
    let _ = std::fs::remove_dir_all(&dir);
}
