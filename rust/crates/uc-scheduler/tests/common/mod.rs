//! Fixtures shared by the scheduler's integration tests: a real etcd, a
//! manifest with fake worker nodes, heartbeats on leases as node-agents
//! write them, and readers for what the scheduler wrote.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, PutOptions};
use serde_json::Value;
use uc_types::{keys, PlacementStatus, SchedulerConfig};

pub fn config(endpoint: &str, grace_seconds: u64) -> SchedulerConfig {
    SchedulerConfig {
        schema_version: uc_types::SCHEMA_VERSION,
        cluster: "test".into(),
        node: "cp1".into(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        store_endpoints: vec![endpoint.to_owned()],
        node_loss_grace_seconds: grace_seconds,
    }
}

/// The hosts/ha golden manifest with its nodes replaced by workers `nodes`
/// and its services by `services` (name to a patch of the golden `web`).
pub fn manifest(nodes: &[&str], services: &[(&str, Value)]) -> Value {
    let mut m = uc_testkit::store::ha_manifest(nodes, |_, _| {});
    let web = m["services"]["web"].clone();
    m["services"] = services
        .iter()
        .map(|(name, patch)| {
            let mut spec = web.clone();
            merge(&mut spec, patch);
            (name.to_string(), spec)
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    m
}

fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(into), Value::Object(patch)) => {
            for (k, v) in patch {
                merge(into.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (into, patch) => *into = patch.clone(),
    }
}

pub use uc_testkit::store::{eventually, import, placed};

/// How long a test waits for the scheduler to act.
pub const WAIT: Duration = Duration::from_secs(20);

/// Waits up to [`WAIT`] until `service`'s assignments (id to node) are
/// `ready`, and gives them back; `what` names the wait in the panic.
pub async fn placed_when(
    client: &Client,
    service: &str,
    what: &str,
    ready: impl Fn(&BTreeMap<String, String>) -> bool,
) -> BTreeMap<String, String> {
    eventually(what, WAIT, || {
        let mut client = client.clone();
        let ready = &ready;
        async move {
            let p = placed(&mut client, service).await;
            ready(&p).then_some(p)
        }
    })
    .await
}

/// A node-agent's heartbeat: a key on a lease of `ttl` seconds, never
/// renewed (tests end sooner); returns the lease to revoke.
pub async fn heartbeat(client: &mut Client, node: &str, ttl: i64) -> i64 {
    let lease = client.lease_grant(ttl, None).await.unwrap().id();
    client
        .put(
            keys::heartbeat(node),
            "{}",
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap();
    lease
}

/// What a node-agent writes once an instance passes its health check.
pub async fn healthy(client: &mut Client, node: &str, service: &str, id: &str) {
    client
        .put(
            keys::instance_status(node, &keys::instance_name(service, id)),
            r#"{"state":"healthy"}"#,
            None,
        )
        .await
        .unwrap();
}

pub async fn status(client: &mut Client, service: &str) -> Option<PlacementStatus> {
    let response = client
        .get(keys::scheduler_status(service), None)
        .await
        .unwrap();
    response
        .kvs()
        .first()
        .map(|kv| serde_json::from_slice(kv.value()).unwrap())
}

/// Whether `placement` puts each of `replicas` instances on its own node.
pub fn spread(placement: &BTreeMap<String, String>, replicas: usize) -> bool {
    let nodes: std::collections::BTreeSet<&String> = placement.values().collect();
    placement.len() == replicas && nodes.len() == replicas
}
