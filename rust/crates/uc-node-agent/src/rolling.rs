//! Rolling updates across nodes: the update slots a node-agent takes in the
//! store before it replaces a healthy instance with a new spec.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use uc_types::keys::{self, Key};
use uc_types::{unix_seconds, InstanceState, NodeAgentConfig};

use crate::follow::Wanted;
use crate::instance::Handle;
use crate::shared::Shared;

/// The update slots of rolling updates: a node-agent replaces a healthy
/// instance with a new spec only while it holds one of the service's
/// `maxUnavailable` slots (a key on its lease, taken in a transaction), and
/// gives it back once the new instance is healthy. A new spec that never
/// gets healthy keeps its slot, so a bad spec stops after maxUnavailable
/// instances; deploying a fixed one goes on from there.
pub(crate) struct RollingUpdates {
    endpoints: Vec<String>,
    node: String,
    shared: Arc<Shared>,
    client: Option<Client>,
    /// Services in which this node may hold slots (all of them after a restart).
    holding: Option<BTreeSet<String>>,
}

#[derive(Serialize, Deserialize)]
struct SlotHolder {
    node: String,
    instance: String,
    since: u64,
}

impl RollingUpdates {
    pub(crate) fn new(config: &NodeAgentConfig, shared: Arc<Shared>) -> RollingUpdates {
        RollingUpdates {
            endpoints: config.store_endpoints.clone(),
            node: config.node.clone(),
            shared,
            client: None,
            holding: None,
        }
    }

    pub(crate) fn healthy(&self, instance: &str) -> bool {
        self.shared
            .statuses
            .lock()
            .map(|s| {
                s.get(instance)
                    .is_some_and(|s| s.state == InstanceState::Healthy)
            })
            .unwrap_or(false)
    }

    async fn client(&mut self) -> Option<Client> {
        if self.client.is_none() {
            let connect = Client::connect(&self.endpoints, None);
            self.client = tokio::time::timeout(Duration::from_secs(2), connect)
                .await
                .ok()
                .and_then(Result::ok);
        }
        self.client.clone()
    }

    /// Takes (or already holds) an update slot for `instance`.
    pub(crate) async fn acquire(&mut self, instance: &str, wanted: &Wanted) -> bool {
        let lease = self.shared.lease.load(Ordering::Relaxed);
        let Some(mut client) = self.client().await else {
            return false;
        };
        if lease == 0 {
            return false;
        }
        let service = &wanted.plan.service;
        let result = async {
            let prefix = keys::service_update_slots_prefix(service);
            let held = client
                .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
                .await?;
            let mine = held.kvs().iter().any(|kv| {
                serde_json::from_slice::<SlotHolder>(kv.value())
                    .is_ok_and(|h| h.node == self.node && h.instance == instance)
            });
            if mine {
                return Ok(true);
            }
            let holder = SlotHolder {
                node: self.node.clone(),
                instance: instance.to_owned(),
                since: unix_seconds(),
            };
            let value = serde_json::to_vec(&holder).unwrap_or_default();
            for n in 0..wanted.max_unavailable.max(1) {
                let key = keys::service_update_slot(service, n);
                let txn = Txn::new()
                    .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        key.as_str(),
                        value.clone(),
                        Some(PutOptions::new().with_lease(lease)),
                    )]);
                if client.txn(txn).await?.succeeded() {
                    tracing::info!(%instance, slot = n, max_unavailable = wanted.max_unavailable, "rolling update: took a slot");
                    return Ok(true);
                }
            }
            Ok::<bool, etcd_client::Error>(false)
        }
        .await;
        match result {
            Ok(true) => {
                self.holding
                    .get_or_insert_with(BTreeSet::new)
                    .insert(service.clone());
                true
            }
            Ok(false) => false,
            Err(err) => {
                tracing::warn!(%err, %instance, "rolling update: cannot reach the store; keeping the old spec for now");
                self.client = None;
                false
            }
        }
    }

    /// Gives back the slots of instances now healthy on their new spec
    /// (or no longer here).
    pub(crate) async fn release_finished(
        &mut self,
        instances: &BTreeMap<String, Handle>,
        desired: &BTreeMap<String, Wanted>,
    ) {
        if self.holding.as_ref().is_some_and(BTreeSet::is_empty) {
            return;
        }
        let Some(mut client) = self.client().await else {
            return;
        };
        let prefixes: Vec<String> = match &self.holding {
            Some(services) => services
                .iter()
                .map(|s| keys::service_update_slots_prefix(s))
                .collect(),
            None => vec![keys::services_prefix()],
        };
        let mut still = BTreeSet::new();
        for prefix in prefixes {
            let Ok(found) = client
                .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
                .await
            else {
                self.client = None;
                return;
            };
            for kv in found.kvs() {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let Ok(holder) = serde_json::from_slice::<SlotHolder>(kv.value()) else {
                    continue;
                };
                let slot = matches!(keys::parse(&key), Some(Key::ServiceUpdateSlot { .. }));
                if !slot || holder.node != self.node {
                    continue;
                }
                let current = match (
                    instances.get(&holder.instance),
                    desired.get(&holder.instance),
                ) {
                    (Some(handle), Some(wanted)) => handle.fingerprint == wanted.fingerprint,
                    _ => true,
                };
                let done = current
                    && (self.healthy(&holder.instance) || !desired.contains_key(&holder.instance));
                if done {
                    let _ = client.delete(key.as_str(), None).await;
                    tracing::info!(instance = %holder.instance, "rolling update: instance healthy on its new spec; slot given back");
                } else if let Some(service) = desired
                    .get(&holder.instance)
                    .map(|w| w.plan.service.clone())
                {
                    still.insert(service);
                }
            }
        }
        self.holding = Some(still);
    }
}
