//! What the scheduler reads from the store, in one transaction so that it is
//! one consistent revision: the manifest's nodes, service specs and their
//! assignments, heartbeats, cordons, instance health and the scheduler's own
//! status keys. `Liveness` turns heartbeats seen over time into the
//! placement's view of each node; `changes` turns a plan into writes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions, Txn, TxnOp, TxnOpResponse};
use serde::Deserialize;
use uc_types::keys::{self, Key};
use uc_types::{Assignment, InstanceState, ManifestRevision, NodeCordon, PlacementStatus, Service};

use crate::placement::{self, Cluster, Cordon, Current, NodeInfo, Plan};

/// The store as the scheduler sees it at one revision.
#[derive(Debug, Default)]
pub struct StoreView {
    pub revision: i64,
    /// None: no manifest imported yet, or one this build cannot read.
    pub manifest: Option<ManifestRevision>,
    /// Services whose spec parsed.
    pub specs: BTreeMap<String, Service>,
    /// Services with a spec key, parsed or not.
    pub declared: BTreeSet<String>,
    /// Service to id to assignment (unreadable ones as None).
    pub assignments: BTreeMap<String, BTreeMap<String, Option<Assignment>>>,
    pub heartbeats: BTreeSet<String>,
    pub cordons: BTreeMap<String, Cordon>,
    /// `(node, instance name)` reported healthy.
    pub healthy: BTreeSet<(String, String)>,
    pub status: BTreeMap<String, Option<PlacementStatus>>,
}

/// The one field of an `InstanceStatus` (`/uc/v1/instances/<node>/<name>/status`)
/// the scheduler reads. Not the whole `InstanceStatus`: a status this build
/// cannot fully parse still counts by its state.
#[derive(Deserialize)]
struct StatusState {
    state: InstanceState,
}

impl StoreView {
    pub async fn read(client: &mut Client) -> Result<StoreView, etcd_client::Error> {
        let prefix = || Some(GetOptions::new().with_prefix());
        let txn = Txn::new().and_then([
            TxnOp::get(keys::manifest_current(), None),
            TxnOp::get(keys::services_prefix(), prefix()),
            TxnOp::get(keys::nodes_prefix(), prefix()),
            TxnOp::get(keys::instances_prefix(), prefix()),
            TxnOp::get(keys::scheduler_status_prefix(), prefix()),
        ]);
        let response = client.txn(txn).await?;
        let mut view = StoreView {
            revision: response.header().map_or(0, |h| h.revision()),
            ..StoreView::default()
        };
        for op in response.op_responses() {
            let TxnOpResponse::Get(get) = op else {
                continue;
            };
            for kv in get.kvs() {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                view.add(&key, kv.value());
            }
        }
        Ok(view)
    }

    fn add(&mut self, key: &str, value: &[u8]) {
        match keys::parse(key) {
            Some(Key::ManifestCurrent) => match serde_json::from_slice(value) {
                Ok(manifest) => self.manifest = Some(manifest),
                Err(err) => {
                    tracing::error!(%key, %err, "cannot read the manifest; placing nothing")
                }
            },
            Some(Key::ServiceSpec { service }) => {
                self.declared.insert(service.to_owned());
                match serde_json::from_slice(value) {
                    Ok(spec) => {
                        self.specs.insert(service.to_owned(), spec);
                    }
                    Err(err) => {
                        tracing::error!(%key, %err, "cannot read the service spec; leaving its instances alone")
                    }
                }
            }
            Some(Key::ServiceAssignment { service, id }) => {
                self.assignments
                    .entry(service.to_owned())
                    .or_default()
                    .insert(id.to_owned(), serde_json::from_slice(value).ok());
            }
            Some(Key::Heartbeat { node }) => {
                self.heartbeats.insert(node.to_owned());
            }
            Some(Key::NodeCordon { node }) => {
                let cordon = match serde_json::from_slice::<NodeCordon>(value) {
                    Ok(c) if c.drain => Cordon::Draining,
                    Ok(_) => Cordon::Cordoned,
                    Err(err) => {
                        tracing::warn!(%key, %err, "unreadable cordon; treating the node as cordoned");
                        Cordon::Cordoned
                    }
                };
                self.cordons.insert(node.to_owned(), cordon);
            }
            Some(Key::InstanceStatus { node, instance })
                if serde_json::from_slice::<StatusState>(value)
                    .is_ok_and(|s| s.state == InstanceState::Healthy) =>
            {
                self.healthy.insert((node.to_owned(), instance.to_owned()));
            }
            Some(Key::SchedulerStatus { service }) => {
                self.status
                    .insert(service.to_owned(), serde_json::from_slice(value).ok());
            }
            _ => {}
        }
    }

    /// The placement input, with each node's liveness from `liveness`.
    /// None when there is no readable manifest.
    pub fn cluster(&self, liveness: &Liveness, now: Instant) -> Option<Cluster> {
        let manifest = &self.manifest.as_ref()?.manifest;
        let nodes = manifest
            .nodes
            .iter()
            .map(|(name, node)| {
                let info = NodeInfo {
                    roles: node.roles.clone(),
                    labels: node.labels.clone(),
                    capacity: node.capacity,
                    liveness: liveness.of(name, now),
                    cordon: self.cordons.get(name).copied().unwrap_or_default(),
                };
                (name.clone(), info)
            })
            .collect();
        let current = self
            .assignments
            .iter()
            .filter(|(service, _)| self.specs.contains_key(*service))
            .map(|(service, ids)| {
                let ids = ids
                    .iter()
                    .filter_map(|(id, a)| {
                        let a = a.as_ref()?;
                        let name = keys::instance_name(service, id);
                        let current = Current {
                            node: a.node.clone(),
                            healthy: self.healthy.contains(&(a.node.clone(), name)),
                        };
                        Some((id.clone(), current))
                    })
                    .collect();
                (service.clone(), ids)
            })
            .collect();
        Some(Cluster {
            nodes,
            services: self.specs.clone(),
            current,
        })
    }

    /// The puts and deletes that take the store from this view to `plan`.
    /// Services whose spec is unreadable keep their assignments.
    pub fn changes(&self, plan: &Plan) -> Vec<TxnOp> {
        let mut ops = Vec::new();
        let none = BTreeMap::new();
        for (service, wanted) in &plan.assignments {
            let have = self.assignments.get(service).unwrap_or(&none);
            for (id, assignment) in wanted {
                if have.get(id).and_then(Option::as_ref) != Some(assignment) {
                    let value = serde_json::to_vec(assignment).unwrap_or_default();
                    ops.push(TxnOp::put(
                        keys::service_assignment(service, id),
                        value,
                        None,
                    ));
                }
            }
            for id in have.keys().filter(|id| !wanted.contains_key(*id)) {
                ops.push(TxnOp::delete(keys::service_assignment(service, id), None));
            }
        }
        for (service, have) in &self.assignments {
            if !self.declared.contains(service) {
                for id in have.keys() {
                    ops.push(TxnOp::delete(keys::service_assignment(service, id), None));
                }
            }
        }
        for (service, status) in &plan.status {
            if self.status.get(service).and_then(Option::as_ref) != Some(status) {
                let value = serde_json::to_vec(status).unwrap_or_default();
                ops.push(TxnOp::put(keys::scheduler_status(service), value, None));
            }
        }
        for service in self.status.keys() {
            if !plan.status.contains_key(service) {
                ops.push(TxnOp::delete(keys::scheduler_status(service), None));
            }
        }
        ops
    }
}

/// When each node's heartbeat was last seen missing, to tell a node that
/// is briefly silent (`Suspect`) from one that is gone (`Lost`). A node
/// never seen alive counts from when this scheduler started leading.
#[derive(Debug)]
pub struct Liveness {
    grace: Duration,
    missing_since: BTreeMap<String, Instant>,
}

impl Liveness {
    pub fn new(grace: Duration) -> Liveness {
        Liveness {
            grace,
            missing_since: BTreeMap::new(),
        }
    }

    /// Records which of `nodes` have a heartbeat now.
    pub fn observe<'a>(
        &mut self,
        nodes: impl IntoIterator<Item = &'a String>,
        heartbeats: &BTreeSet<String>,
        now: Instant,
    ) {
        let nodes: BTreeSet<&String> = nodes.into_iter().collect();
        self.missing_since.retain(|n, _| nodes.contains(n));
        for node in nodes {
            if heartbeats.contains(node) {
                self.missing_since.remove(node);
            } else {
                self.missing_since.entry(node.clone()).or_insert(now);
            }
        }
    }

    pub fn of(&self, node: &str, now: Instant) -> placement::Liveness {
        match self.missing_since.get(node) {
            None => placement::Liveness::Alive,
            Some(since) if now.duration_since(*since) >= self.grace => placement::Liveness::Lost,
            Some(_) => placement::Liveness::Suspect,
        }
    }

    /// When the next silent node turns `Lost`, if any is still within grace.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.missing_since
            .values()
            .map(|since| *since + self.grace)
            .filter(|deadline| *deadline > now)
            .min()
    }
}
