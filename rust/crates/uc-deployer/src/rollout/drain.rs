//! Traffic-aware switching: before a rollout gives a node its new system,
//! the node is taken out of traffic (`keys::node_traffic`: uc-lb stops
//! sending its instances new connections, uc-dns leaves its addresses out
//! of `service` records), the deployer waits until no uc-lb reports an open
//! connection to its instances or the rollout's drain timeout is over, then
//! switches it, waits for its health gate, and puts it back: the record
//! says `drained: false` until the backends uc-lb had in rotation before
//! are back in rotation (bounded by the same timeout), so the next wave
//! does not drain a node while this one is still out, then it is deleted.
//!
//! Every step is decided from the store (`next`, pure), so a deployer that
//! restarts at any point resumes: a written drain keeps its `since`, so the
//! bound counts from the first write. A halted rollout (failed, paused,
//! aborted) and a rollout that replaced another put their drained nodes
//! back (`restore_all`); drains written by anyone else are left alone.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use serde::Deserialize;
use uc_types::keys::{self, Key};
use uc_types::{LbBackendRef, LbBackendState, LbListenerStatus, ManifestRevision, TrafficDrain};

/// A node of the current wave, as the store shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// It has this rollout's desired system already.
    pub switched: bool,
    /// Its traffic record, if any.
    pub drain: Option<TrafficDrain>,
    /// Backends of its instances that some uc-lb still has in rotation, or
    /// draining with open connections.
    pub open: usize,
    /// Backends it had in rotation before its drain that are not back in
    /// rotation yet (while restored).
    pub returning: usize,
    pub health: Health,
}

/// What the node reports about this rollout's system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Failed or rolled back: why.
    Failed(String),
    /// Switching, or not reported yet.
    Pending,
}

/// The next step for a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write this rollout's drain.
    Drain,
    /// Open connections remain and the bound is not reached.
    WaitForConnections,
    /// Give it its new system (`timed_out`: connections were still open).
    Switch {
        timed_out: bool,
    },
    /// Switched, not healthy yet.
    WaitForHealth,
    /// Healthy: mark this rollout's drain `drained: false`.
    Restore,
    /// Restored; its backends are not all back in rotation.
    WaitForReturn,
    /// Back in rotation (or the bound is over): delete the drain.
    Forget,
    /// Healthy and back in traffic.
    Done,
    Failed(String),
}

/// Decides `node`'s next step in rollout `rollout`, at unix second `now`.
///
/// 1. Not switched and not drained: drain it. A drain that is not this
///    rollout's but says `drained` (an operator's) counts as the drain.
/// 2. Drained, not switched: switch once nothing is open, or once
///    `timeout` seconds have passed since the drain was written.
/// 3. Switched: wait for its health; once healthy, restore this rollout's
///    drain (never another's), wait until its backends are back in
///    rotation or `timeout` seconds have passed since the restore, and
///    delete the drain: then it is done. A failure is reported whatever the
///    drain; halting deletes it (`restore_all`).
pub fn next(view: &NodeView, rollout: u64, now: u64, timeout: u64) -> Step {
    let ours = view.drain.as_ref().filter(|d| d.rollout == Some(rollout));
    let drained = view.drain.as_ref().filter(|d| d.drained);
    if !view.switched {
        let Some(drain) = drained else {
            return Step::Drain;
        };
        if view.open == 0 {
            return Step::Switch { timed_out: false };
        }
        if now.saturating_sub(drain.since) >= timeout {
            return Step::Switch { timed_out: true };
        }
        return Step::WaitForConnections;
    }
    match (&view.health, ours) {
        (Health::Failed(why), _) => Step::Failed(why.clone()),
        (Health::Pending, _) => Step::WaitForHealth,
        (Health::Healthy, None) => Step::Done,
        (Health::Healthy, Some(drain)) if drain.drained => Step::Restore,
        (Health::Healthy, Some(drain)) => {
            if view.returning == 0 || now.saturating_sub(drain.since) >= timeout {
                Step::Forget
            } else {
                Step::WaitForReturn
            }
        }
    }
}

/// The record this rollout writes to take a node out of traffic; `serving`:
/// its backends in rotation now.
pub fn record(rollout: u64, wave: usize, now: u64, serving: Vec<LbBackendRef>) -> TrafficDrain {
    TrafficDrain {
        drained: true,
        reason: format!("rollout {rollout}, wave {}", wave + 1),
        since: now,
        rollout: Some(rollout),
        serving,
    }
}

/// `node`'s traffic record, if any and readable.
pub async fn read(
    client: &mut Client,
    node: &str,
) -> Result<Option<TrafficDrain>, etcd_client::Error> {
    let response = client.get(keys::node_traffic(node), None).await?;
    Ok(response
        .kvs()
        .first()
        .and_then(|kv| serde_json::from_slice(kv.value()).ok()))
}

pub async fn write(
    client: &mut Client,
    node: &str,
    drain: &TrafficDrain,
) -> Result<(), etcd_client::Error> {
    let value = serde_json::to_vec(drain).unwrap_or_default();
    client.put(keys::node_traffic(node), value, None).await?;
    Ok(())
}

/// Deletes `node`'s drain if it is still rollout `rollout`'s.
pub async fn forget(
    client: &mut Client,
    node: &str,
    rollout: u64,
) -> Result<(), etcd_client::Error> {
    let key = keys::node_traffic(node);
    let response = client.get(key.as_str(), None).await?;
    let Some(kv) = response.kvs().first() else {
        return Ok(());
    };
    let drain = serde_json::from_slice::<TrafficDrain>(kv.value()).ok();
    if drain.and_then(|d| d.rollout) != Some(rollout) {
        return Ok(());
    }
    let unchanged = Compare::mod_revision(key.as_str(), CompareOp::Equal, kv.mod_revision());
    let txn = Txn::new()
        .when(vec![unchanged])
        .and_then(vec![TxnOp::delete(key.as_str(), None)]);
    client.txn(txn).await?;
    tracing::info!(node, rollout, "node back in traffic");
    Ok(())
}

/// Puts back every node a rollout drained, except rollout `keep`'s (the
/// running one, if any). Drains without a rollout are not the deployer's.
pub async fn restore_all(client: &mut Client, keep: Option<u64>) -> Result<(), etcd_client::Error> {
    let response = client
        .get(keys::nodes_prefix(), Some(GetOptions::new().with_prefix()))
        .await?;
    let mut stale = Vec::new();
    for kv in response.kvs() {
        let key = String::from_utf8_lossy(kv.key());
        let Some(Key::NodeTraffic { node }) = keys::parse(&key) else {
            continue;
        };
        let rollout = serde_json::from_slice::<TrafficDrain>(kv.value())
            .ok()
            .and_then(|d| d.rollout);
        if let Some(rollout) = rollout.filter(|r| Some(*r) != keep) {
            stale.push((node.to_owned(), rollout));
        }
    }
    for (node, rollout) in stale {
        forget(client, &node, rollout).await?;
    }
    Ok(())
}

/// The part of an instance status the deployer reads.
#[derive(Deserialize)]
struct Reported {
    address: IpAddr,
    #[serde(default)]
    ports: std::collections::BTreeMap<String, u16>,
}

/// The part of an assignment the deployer reads.
#[derive(Deserialize)]
struct Assigned {
    node: String,
    #[serde(default)]
    ports: std::collections::BTreeMap<String, u16>,
}

/// One backend some uc-lb lists at one of a node's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub at: LbBackendRef,
    pub state: LbBackendState,
    pub connections: Option<u64>,
}

/// How many of `listed` still take or finish connections: in rotation (or
/// not yet drained by that uc-lb), or draining with open connections.
pub fn open(listed: &[Listed]) -> usize {
    listed
        .iter()
        .filter(|l| match l.state {
            LbBackendState::Draining => l.connections.unwrap_or(1) > 0,
            _ => true,
        })
        .count()
}

/// The ones in rotation: what must come back after the switch.
pub fn serving(listed: &[Listed]) -> Vec<LbBackendRef> {
    listed
        .iter()
        .filter(|l| l.state == LbBackendState::Up)
        .map(|l| l.at.clone())
        .collect()
}

/// How many of `serving` are not back in rotation in their uc-lb's status.
/// A listener status that is gone (its uc-lb stopped, or the listener was
/// removed) waits for nothing.
pub fn returning(statuses: &[LbListenerStatus], serving: &[LbBackendRef]) -> usize {
    serving
        .iter()
        .filter(|at| {
            let Some(status) = statuses
                .iter()
                .find(|s| s.node == at.lb && s.listener == at.listener)
            else {
                return false;
            };
            !status
                .backends
                .iter()
                .any(|b| b.address == at.address && b.state == LbBackendState::Up)
        })
        .count()
}

/// Every uc-lb's listener statuses (unreadable ones skipped).
pub async fn lb_statuses(client: &mut Client) -> Result<Vec<LbListenerStatus>, etcd_client::Error> {
    let response = client
        .get(
            keys::lb_status_prefix(),
            Some(GetOptions::new().with_prefix()),
        )
        .await?;
    Ok(response
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
        .collect())
}

/// The backends uc-lbs list at `node`'s instances: a backend is the node's
/// when its address is the node's (from the manifest, or one its instances
/// reported) and its port one its instances use (assigned, reported, or
/// their services' declared ports), which is what uc-lb resolves a service
/// to.
pub async fn node_backends(
    client: &mut Client,
    node: &str,
) -> Result<Vec<Listed>, etcd_client::Error> {
    let prefix = || Some(GetOptions::new().with_prefix());
    let txn = Txn::new().and_then(vec![
        TxnOp::get(keys::node_instances_prefix(node), prefix()),
        TxnOp::get(keys::services_prefix(), prefix()),
        TxnOp::get(keys::manifest_current(), None),
        TxnOp::get(keys::lb_status_prefix(), prefix()),
    ]);
    let response = client.txn(txn).await?;
    let mut addresses: BTreeSet<IpAddr> = BTreeSet::new();
    let mut ports: BTreeSet<u16> = BTreeSet::new();
    let mut services: BTreeSet<String> = BTreeSet::new();
    let mut manifest: Option<ManifestRevision> = None;
    let mut statuses: Vec<LbListenerStatus> = Vec::new();
    for op in response.op_responses() {
        let etcd_client::TxnOpResponse::Get(get) = op else {
            continue;
        };
        for kv in get.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            match keys::parse(&key) {
                Some(Key::InstanceStatus { .. }) => {
                    if let Ok(status) = serde_json::from_slice::<Reported>(kv.value()) {
                        addresses.insert(status.address);
                        ports.extend(status.ports.values());
                    }
                }
                Some(Key::ServiceAssignment { service, .. }) => {
                    match serde_json::from_slice::<Assigned>(kv.value()) {
                        Ok(assigned) if assigned.node == node => {
                            ports.extend(assigned.ports.values());
                            services.insert(service.to_owned());
                        }
                        _ => {}
                    }
                }
                Some(Key::ManifestCurrent) => manifest = serde_json::from_slice(kv.value()).ok(),
                Some(Key::LbListenerStatus { .. }) => {
                    statuses.extend(serde_json::from_slice::<LbListenerStatus>(kv.value()).ok());
                }
                _ => {}
            }
        }
    }
    if let Some(manifest) = &manifest {
        if let Some(declared) = manifest.manifest.nodes.get(node) {
            addresses.extend(declared.addresses.iter().copied());
        }
        for service in &services {
            if let Some(spec) = manifest.manifest.services.get(service) {
                ports.extend(spec.ports.values().map(|p| p.port));
            }
        }
    }
    let mine =
        |address: &SocketAddr| addresses.contains(&address.ip()) && ports.contains(&address.port());
    let mut listed = Vec::new();
    for status in statuses {
        for backend in status.backends.iter().filter(|b| mine(&b.address)) {
            listed.push(Listed {
                at: LbBackendRef {
                    lb: status.node.clone(),
                    listener: status.listener.clone(),
                    address: backend.address,
                },
                state: backend.state,
                connections: backend.connections,
            });
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests;
