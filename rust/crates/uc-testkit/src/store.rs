//! Async helpers for tests that read and write the cluster's keyspace
//! through a real etcd (or uc-store): importing a manifest as the deployer
//! does (hosts/ha's, with the test's nodes), reading JSON values under a
//! prefix, and waiting for a condition.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use uc_types::keys;

/// hosts/ha's rendered manifest (the HA example's golden) with `nodes` as
/// its nodes: each a copy of its worker1 without labels, then `edit`ed.
pub fn ha_manifest(nodes: &[&str], edit: impl Fn(&str, &mut Value)) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../hosts/ha/manifest.json"
    );
    let text = std::fs::read_to_string(path).expect("hosts/ha/manifest.json");
    let mut m: Value = serde_json::from_str(&text).expect("hosts/ha's manifest is JSON");
    let worker = m["nodes"]["worker1"].clone();
    m["nodes"] = nodes
        .iter()
        .map(|n| {
            let mut node = worker.clone();
            node["labels"] = json!({});
            edit(n, &mut node);
            (n.to_string(), node)
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    m
}

/// Imports `manifest` the way the deployer does: the current revision and
/// one spec per service.
pub async fn import(client: &mut Client, manifest: &Value) {
    let revision = json!({"revision": 1, "importedAt": 0, "systems": {}, "manifest": manifest});
    client
        .put(keys::manifest_current(), revision.to_string(), None)
        .await
        .unwrap();
    for (name, spec) in manifest["services"].as_object().unwrap() {
        client
            .put(keys::service_spec(name), spec.to_string(), None)
            .await
            .unwrap();
    }
}

/// Every JSON value under `prefix`, by the rest of its key.
pub async fn values_under<T: DeserializeOwned>(
    client: &mut Client,
    prefix: &str,
) -> BTreeMap<String, T> {
    let response = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    response
        .kvs()
        .iter()
        .map(|kv| {
            let rest = String::from_utf8_lossy(kv.key())[prefix.len()..].to_owned();
            (rest, serde_json::from_slice(kv.value()).unwrap())
        })
        .collect()
}

/// Assignment id to node of a service.
pub async fn placed(client: &mut Client, service: &str) -> BTreeMap<String, String> {
    values_under::<uc_types::Assignment>(client, &keys::service_assignments_prefix(service))
        .await
        .into_iter()
        .map(|(id, a)| (id, a.node))
        .collect()
}

/// Polls `f` every 100 ms until it returns Some; panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = f().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
