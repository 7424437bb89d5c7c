//! The node's presence in the store: a heartbeat on a lease, and every
//! instance's status on the same lease (so they vanish with the node). The
//! statuses the agent shows itself are kept current with or without the store.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, GetOptions, PutOptions};
use tokio::sync::mpsc;
use tracing::Instrument;
use uc_types::keys::{self, Key};
use uc_types::{InstanceStatus, NodeAgentConfig, NodeHeartbeat};

use crate::instance::{self, Statuses, Update};
use crate::shared::{connect, Shared};

/// Keeps the statuses this agent shows (/instances, /metrics, rolling
/// updates) current whether or not the store is reachable, and passes each
/// update on to the store writer.
pub(crate) fn relay_statuses(
    shared: Arc<Shared>,
    mut updates: mpsc::UnboundedReceiver<Update>,
) -> mpsc::UnboundedReceiver<Update> {
    let (to_store, store_updates) = mpsc::unbounded_channel();
    let relay = async move {
        while let Some(update) = updates.recv().await {
            apply(&shared, &update);
            if to_store.send(update).is_err() {
                break;
            }
        }
    };
    tokio::spawn(relay.instrument(tracing::Span::current()));
    store_updates
}

/// Heartbeat on a lease, and every instance status on the same lease.
pub(crate) async fn write_statuses(
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
    let prefix = keys::node_instances_prefix(&config.node);
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
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, AtomicI64};
    use std::sync::Mutex;
    use uc_types::{InstancePhase, InstanceState, InstanceStatus};

    use crate::runner::Backend;

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
