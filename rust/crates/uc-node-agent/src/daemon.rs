//! The agent: adopts the instances its last run left, heartbeats on a
//! store lease, follows the assignments of its node and runs them, and
//! writes their statuses (on the same lease, so they vanish with the node).
//! While the store is unreachable everything keeps running as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::BTreeSet;

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use uc_types::keys::{self, Key};
use uc_types::{
    unix_seconds, Assignment, InstanceState, InstanceStatus, NodeAgentConfig, NodeHeartbeat,
    Service,
};

use crate::instance::{self, Context, Handle, Statuses, Update};
use crate::logs;
use crate::plan::InstancePlan;
use crate::runner::{Backend, Record};

/// How the agent runs, besides its config file.
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backend,
    /// SIGTERM to SIGKILL when stopping an instance.
    pub stop_timeout: Duration,
    pub log_max_bytes: u64,
    pub log_keep: u32,
    /// Stop every instance on shutdown instead of leaving them to be
    /// adopted (decommissioning a node, or a demo).
    pub stop_instances_on_exit: bool,
}

/// What the HTTP endpoint shows.
pub struct Shared {
    pub node: String,
    pub state_dir: PathBuf,
    pub backend: Backend,
    pub statuses: Mutex<Statuses>,
    pub store_connected: AtomicBool,
    /// The heartbeat lease (0 while the store is unreachable).
    pub lease: AtomicI64,
}

/// An instance this node should run, and how many of its service may be
/// down at once while a new spec rolls out.
#[derive(Debug, Clone, PartialEq)]
struct Wanted {
    plan: InstancePlan,
    /// `plan.fingerprint()`, computed once per read of the store rather
    /// than on every reconcile pass.
    fingerprint: String,
    max_unavailable: u32,
}

type Desired = Option<BTreeMap<String, Wanted>>;

pub async fn run(
    config: NodeAgentConfig,
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let state_dir = PathBuf::from(&config.state_dir);
    for sub in ["instances", "logs", "secrets", "run"] {
        let dir = state_dir.join(sub);
        std::fs::create_dir_all(&dir).map_err(|e| {
            format!(
                "cannot create {}: {e} (stateDir must be writable by the agent)",
                dir.display()
            )
        })?;
    }
    let listener = uc_daemon::bind_http(config.http_listen).await?;
    let http_url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let shared = Arc::new(Shared {
        node: config.node.clone(),
        state_dir: state_dir.clone(),
        backend: options.backend,
        statuses: Mutex::new(Statuses::new()),
        store_connected: AtomicBool::new(false),
        lease: AtomicI64::new(0),
    });
    let app = crate::http::router(shared.clone());
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "HTTP endpoint failed");
        }
    });
    tracing::info!(node = %config.node, backend = options.backend.name(), http = %http_url, endpoints = ?config.store_endpoints, state_dir = %state_dir.display(), "uc-node-agent running");

    let (updates_tx, updates_rx) = mpsc::unbounded_channel();
    let to_store = relay_statuses(shared.clone(), updates_rx);
    let context = Arc::new(Context {
        backend: options.backend,
        state_dir: state_dir.clone(),
        stop_timeout: options.stop_timeout,
        updates: updates_tx,
    });
    let heartbeat = NodeHeartbeat {
        url: http_url,
        address: config.address,
        since: unix_seconds(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let writer = tokio::spawn(write_statuses(
        config.clone(),
        heartbeat,
        to_store,
        shared.clone(),
    ));
    let (desired_tx, mut desired_rx) = watch::channel::<Desired>(None);
    let follower = tokio::spawn(follow_assignments(config.clone(), desired_tx));

    let mut instances = adopt(&context).await;
    let mut rolling = RollingUpdates::new(&config, shared.clone());
    let mut rotate = tokio::time::interval(Duration::from_secs(10));
    // Spec changes waiting for an update slot, and slots to give back.
    let mut retry = tokio::time::interval(Duration::from_millis(500));
    let mut desired: Option<BTreeMap<String, Wanted>> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            changed = desired_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                desired = desired_rx.borrow_and_update().clone();
            }
            _ = retry.tick() => {}
            _ = rotate.tick() => {
                rotate_logs(&state_dir, &options);
                continue;
            }
            () = &mut shutdown => break,
        }
        if let Some(desired) = &desired {
            reconcile(&context, &mut instances, desired, &mut rolling).await;
            rolling.release_finished(&instances, desired).await;
        }
    }
    if options.stop_instances_on_exit {
        tracing::info!(
            instances = instances.len(),
            "shutting down; stopping every instance"
        );
        for handle in instances.values() {
            handle.stop();
        }
        for (_, handle) in instances {
            handle.finished().await;
        }
    } else {
        tracing::info!(
            instances = instances.len(),
            "shutting down; instances keep running and are adopted by the next start"
        );
        for (_, handle) in instances {
            handle.detach();
        }
    }
    follower.abort();
    writer.abort();
    Ok(())
}

/// Supervises again what the last run recorded and is still running.
async fn adopt(context: &Arc<Context>) -> BTreeMap<String, Handle> {
    let mut adopted = BTreeMap::new();
    let dir = context.state_dir.join("instances");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return adopted;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let record: Record = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(record) => record,
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "unreadable instance record; ignoring it");
                continue;
            }
        };
        match context.backend.adopt(&record).await {
            Some(running) => {
                let name = record.plan.name.clone();
                let handle = Handle::spawn(
                    context.clone(),
                    record.plan,
                    Some((running, record.restarts)),
                );
                adopted.insert(name, handle);
            }
            None => {
                tracing::info!(instance = %record.plan.name, "recorded instance is no longer running");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    adopted
}

/// Stops what is no longer assigned, replaces what changed (a healthy
/// instance only with an update slot, so at most maxUnavailable of a
/// service are down at once), then starts what is new.
async fn reconcile(
    context: &Arc<Context>,
    instances: &mut BTreeMap<String, Handle>,
    desired: &BTreeMap<String, Wanted>,
    rolling: &mut RollingUpdates,
) {
    let outdated: Vec<String> = instances
        .iter()
        .filter(|(name, handle)| {
            desired
                .get(*name)
                .is_none_or(|wanted| wanted.fingerprint != handle.fingerprint)
        })
        .map(|(name, _)| name.clone())
        .collect();
    let mut stopping = Vec::new();
    for name in outdated {
        let why = match desired.get(&name) {
            None => "it is no longer assigned here",
            Some(wanted) => {
                if rolling.healthy(&name) && !rolling.acquire(&name, wanted).await {
                    // Keeps running its old spec until a slot frees up.
                    continue;
                }
                "its spec changed"
            }
        };
        if let Some(handle) = instances.remove(&name) {
            tracing::info!(instance = %name, why, "stopping instance");
            handle.stop();
            stopping.push(handle);
        }
    }
    // In parallel: each got its stop signal above.
    for handle in stopping {
        handle.finished().await;
    }
    for (name, wanted) in desired {
        if let std::collections::btree_map::Entry::Vacant(slot) = instances.entry(name.clone()) {
            tracing::info!(instance = %name, "starting instance");
            slot.insert(Handle::spawn(context.clone(), wanted.plan.clone(), None));
        }
    }
}

/// The update slots of rolling updates: a node-agent replaces a healthy
/// instance with a new spec only while it holds one of the service's
/// `maxUnavailable` slots (a key on its lease, taken in a transaction), and
/// gives it back once the new instance is healthy. A new spec that never
/// gets healthy keeps its slot, so a bad spec stops after maxUnavailable
/// instances; deploying a fixed one goes on from there.
struct RollingUpdates {
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
    fn new(config: &NodeAgentConfig, shared: Arc<Shared>) -> RollingUpdates {
        RollingUpdates {
            endpoints: config.store_endpoints.clone(),
            node: config.node.clone(),
            shared,
            client: None,
            holding: None,
        }
    }

    fn healthy(&self, instance: &str) -> bool {
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
    async fn acquire(&mut self, instance: &str, wanted: &Wanted) -> bool {
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
    async fn release_finished(
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

fn rotate_logs(state_dir: &Path, options: &Options) {
    let Ok(entries) = std::fs::read_dir(state_dir.join("logs")) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) == Some("log") {
            match logs::rotate_if_large(&path, options.log_max_bytes, options.log_keep) {
                Ok(true) => tracing::info!(log = %path.display(), "rotated"),
                Ok(false) => {}
                Err(err) => tracing::warn!(log = %path.display(), %err, "cannot rotate"),
            }
        }
    }
}

async fn connect(config: &NodeAgentConfig, what: &str) -> Client {
    let mut delay = Duration::from_millis(200);
    loop {
        match Client::connect(&config.store_endpoints, None).await {
            Ok(client) => return client,
            Err(err) => {
                tracing::warn!(%err, endpoints = ?config.store_endpoints, what, "store unreachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The instances assigned to this node, from the store's service specs
/// and assignments; a new value on every change under `services/`.
async fn follow_assignments(config: NodeAgentConfig, desired: watch::Sender<Desired>) {
    loop {
        let mut client = connect(&config, "assignments").await;
        if let Err(err) = follow(&mut client, &config, &desired).await {
            tracing::warn!(%err, "lost the store while following assignments; reconnecting");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn follow(
    client: &mut Client,
    config: &NodeAgentConfig,
    desired: &watch::Sender<Desired>,
) -> Result<(), etcd_client::Error> {
    let prefix = keys::services_prefix();
    let revision = read_desired(client, config, desired).await?;
    let mut stream = client
        .watch(
            prefix.clone(),
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await?;
    while let Some(response) = stream.message().await? {
        if response.canceled() {
            break;
        }
        if response.events().is_empty() {
            continue;
        }
        // A burst of writes (an import, a drain) becomes one read.
        tokio::time::sleep(Duration::from_millis(50)).await;
        read_desired(client, config, desired).await?;
    }
    Err(etcd_client::Error::WatchError("watch ended".into()))
}

async fn read_desired(
    client: &mut Client,
    config: &NodeAgentConfig,
    desired: &watch::Sender<Desired>,
) -> Result<i64, etcd_client::Error> {
    let prefix = keys::services_prefix();
    let response = client
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = response.header().map_or(0, |h| h.revision());
    let mut specs: BTreeMap<String, Service> = BTreeMap::new();
    let mut mine: Vec<(String, String, Assignment)> = Vec::new();
    for kv in response.kvs() {
        let key = String::from_utf8_lossy(kv.key());
        match keys::parse(&key) {
            Some(Key::ServiceSpec { service }) => match serde_json::from_slice(kv.value()) {
                Ok(spec) => {
                    specs.insert(service.to_owned(), spec);
                }
                Err(err) => tracing::error!(%key, %err, "unreadable service spec"),
            },
            Some(Key::ServiceAssignment { service, id }) => {
                match serde_json::from_slice::<Assignment>(kv.value()) {
                    Ok(a) if a.node == config.node => {
                        mine.push((service.to_owned(), id.to_owned(), a));
                    }
                    Ok(_) => {}
                    Err(err) => tracing::error!(%key, %err, "unreadable assignment"),
                }
            }
            _ => {}
        }
    }
    let mut plans = BTreeMap::new();
    for (service, id, assignment) in mine {
        let Some(spec) = specs.get(&service) else {
            tracing::warn!(%service, %id, "assignment without a service spec; not started");
            continue;
        };
        match InstancePlan::new(
            &config.node,
            config.address,
            &service,
            &id,
            spec,
            &assignment,
        ) {
            Ok(plan) => {
                let max_unavailable = spec.placement.max_unavailable.max(1);
                plans.insert(
                    plan.name.clone(),
                    Wanted {
                        fingerprint: plan.fingerprint(),
                        plan,
                        max_unavailable,
                    },
                );
            }
            Err(err) => tracing::error!(%service, %id, %err, "cannot run this instance"),
        }
    }
    desired.send_if_modified(|current| {
        let changed = current.as_ref() != Some(&plans);
        *current = Some(plans);
        changed
    });
    Ok(revision)
}

/// Keeps the statuses this agent shows (/instances, /metrics, rolling
/// updates) current whether or not the store is reachable, and passes each
/// update on to the store writer.
fn relay_statuses(
    shared: Arc<Shared>,
    mut updates: mpsc::UnboundedReceiver<Update>,
) -> mpsc::UnboundedReceiver<Update> {
    let (to_store, store_updates) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(update) = updates.recv().await {
            apply(&shared, &update);
            if to_store.send(update).is_err() {
                break;
            }
        }
    });
    store_updates
}

/// Heartbeat on a lease, and every instance status on the same lease.
async fn write_statuses(
    config: NodeAgentConfig,
    heartbeat: NodeHeartbeat,
    mut updates: mpsc::UnboundedReceiver<Update>,
    shared: Arc<Shared>,
) {
    let lease_file = shared.state_dir.join("lease");
    loop {
        let mut client = connect(&config, "heartbeat").await;
        let result = keep_writing(
            &mut client,
            &config,
            &heartbeat,
            &mut updates,
            &shared,
            &lease_file,
        )
        .await;
        shared.store_connected.store(false, Ordering::Relaxed);
        shared.lease.store(0, Ordering::Relaxed);
        if let Err(err) = result {
            tracing::warn!(%err, "heartbeat interrupted; reconnecting");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn apply(shared: &Shared, update: &Update) {
    let mut statuses = shared.statuses.lock().unwrap_or_else(|e| e.into_inner());
    match update {
        Update::Status(status) => {
            statuses.insert(
                keys::instance_name(&status.service, &status.id),
                status.clone(),
            );
        }
        Update::Gone { name } => {
            statuses.remove(name);
        }
    }
}

async fn keep_writing(
    client: &mut Client,
    config: &NodeAgentConfig,
    heartbeat: &NodeHeartbeat,
    updates: &mut mpsc::UnboundedReceiver<Update>,
    shared: &Shared,
    lease_file: &Path,
) -> Result<(), etcd_client::Error> {
    let ttl = i64::try_from(config.heartbeat_ttl_seconds.max(2)).unwrap_or(10);
    let lease = reuse_or_grant(client, ttl, lease_file).await?;
    let put = |lease| Some(PutOptions::new().with_lease(lease));
    client
        .put(
            keys::heartbeat(&config.node),
            serde_json::to_vec(heartbeat).unwrap_or_default(),
            put(lease),
        )
        .await?;
    // The whole picture (it already holds what was queued while away: see
    // relay_statuses), minus stale keys.
    while updates.try_recv().is_ok() {}
    let snapshot: Statuses = shared
        .statuses
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let prefix = format!("{}{}/", keys::instances_prefix(), config.node);
    let existing = client
        .get(
            prefix.as_str(),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await?;
    for kv in existing.kvs() {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let known = matches!(
            keys::parse(&key),
            Some(Key::InstanceStatus { node, instance })
                if node == config.node && snapshot.contains_key(instance)
        );
        if !known {
            client.delete(key, None).await?;
        }
    }
    for (name, status) in &snapshot {
        write_status(client, &config.node, name, status, lease).await?;
    }
    shared.store_connected.store(true, Ordering::Relaxed);
    shared.lease.store(lease, Ordering::Relaxed);
    tracing::info!(lease, ttl, "heartbeat on the store");
    let (mut keeper, mut responses) = client.lease_keep_alive(lease).await?;
    let mut tick = tokio::time::interval(Duration::from_millis(
        u64::try_from(ttl).unwrap_or(10) * 1000 / 3,
    ));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                keeper.keep_alive().await?;
                match responses.message().await? {
                    Some(answer) if answer.ttl() > 0 => {}
                    _ => {
                        tracing::warn!(lease, "heartbeat lease expired (store unreachable too long?); taking a new one");
                        let _ = std::fs::remove_file(lease_file);
                        return Ok(());
                    }
                }
            }
            update = updates.recv() => {
                let Some(update) = update else { return Ok(()) };
                match &update {
                    Update::Status(status) => {
                        let name = keys::instance_name(&status.service, &status.id);
                        write_status(client, &config.node, &name, status, lease).await?;
                    }
                    Update::Gone { name } => {
                        client.delete(keys::instance_status(&config.node, name), None).await?;
                    }
                }
            }
        }
    }
}

async fn write_status(
    client: &mut Client,
    node: &str,
    name: &str,
    status: &InstanceStatus,
    lease: i64,
) -> Result<(), etcd_client::Error> {
    client
        .put(
            keys::instance_status(node, name),
            serde_json::to_vec(status).unwrap_or_default(),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .map(drop)
}

/// The lease of the last run if it is still alive (a quick agent restart
/// keeps the node's heartbeat and statuses), otherwise a new one.
async fn reuse_or_grant(
    client: &mut Client,
    ttl: i64,
    lease_file: &Path,
) -> Result<i64, etcd_client::Error> {
    if let Some(id) = std::fs::read_to_string(lease_file)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
    {
        if let Ok(answer) = client.lease_time_to_live(id, None).await {
            if answer.ttl() > 0 {
                return Ok(id);
            }
        }
    }
    let id = client.lease_grant(ttl, None).await?.id();
    if let Err(err) = instance::write_atomically(lease_file, id.to_string().as_bytes(), 0o644) {
        tracing::warn!(%err, "cannot record the heartbeat lease");
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use uc_types::{InstancePhase, InstanceState, InstanceStatus};

    fn status(state: InstanceState, restarts: u32) -> InstanceStatus {
        InstanceStatus {
            service: "web".into(),
            id: "0".into(),
            state,
            phase: InstancePhase::Running,
            pid: Some(42),
            restarts,
            address: "127.0.0.1".parse().unwrap(),
            ports: BTreeMap::new(),
            since: 1,
            message: None,
        }
    }

    #[tokio::test]
    async fn local_statuses_follow_the_instances_while_the_store_is_unreachable() {
        let shared = Arc::new(Shared {
            node: "n1".into(),
            state_dir: PathBuf::from("/nonexistent"),
            backend: Backend::Process,
            statuses: Mutex::new(Statuses::new()),
            store_connected: AtomicBool::new(false),
            lease: AtomicI64::new(0),
        });
        let (updates, from_instances) = mpsc::unbounded_channel();
        // Nobody writes to the store: the receiver is held, never read.
        let _to_store = relay_statuses(shared.clone(), from_instances);
        let local = |shared: &Shared| shared.statuses.lock().unwrap().get("web-0").cloned();
        updates
            .send(Update::Status(status(InstanceState::Healthy, 0)))
            .unwrap();
        updates
            .send(Update::Status(status(InstanceState::Unhealthy, 1)))
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while local(&shared).map(|s| s.restarts) != Some(1) {
            assert!(std::time::Instant::now() < deadline, "{:?}", local(&shared));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(local(&shared).unwrap().state, InstanceState::Unhealthy);
        updates
            .send(Update::Gone {
                name: "web-0".into(),
            })
            .unwrap();
        while local(&shared).is_some() {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
