//! The agent: adopts the instances its last run left, heartbeats on a
//! store lease (`status`), follows the assignments of its node (`follow`)
//! and runs them, replacing changed ones under update slots (`rolling`).
//! While the store is unreachable everything keeps running as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::Instrument;
use uc_types::{unix_seconds, NodeAgentConfig, NodeHeartbeat};

use crate::follow::{follow_assignments, Desired, Wanted};
use crate::instance::{Context, Handle, Statuses};
use crate::logs;
use crate::rolling::RollingUpdates;
use crate::runner::{Backend, Record};
use crate::shared::Shared;
use crate::status::{relay_statuses, write_statuses};

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

/// Why the agent could not start (once running, it only stops on shutdown).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot create {}: {source} (stateDir must be writable by the agent)", path.display())]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The HTTP endpoint's address could not be bound; uc-daemon says why.
    #[error(transparent)]
    Listen(#[from] uc_daemon::BindError),
    #[error("cannot tell the address the HTTP endpoint listens on: {0}")]
    LocalAddr(std::io::Error),
}

/// Runs the agent until `shutdown`; everything it logs is in a `node-agent`
/// span naming its node.
pub async fn run(
    config: NodeAgentConfig,
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let span = tracing::info_span!("node-agent", node = %config.node);
    run_agent(config, options, shutdown).instrument(span).await
}

async fn run_agent(
    config: NodeAgentConfig,
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let state_dir = PathBuf::from(&config.state_dir);
    for sub in ["instances", "logs", "secrets", "run"] {
        let dir = state_dir.join(sub);
        std::fs::create_dir_all(&dir)
            .map_err(|source| DaemonError::StateDir { path: dir, source })?;
    }
    let listener = uc_daemon::bind_http(config.http_listen).await?;
    let http_url = format!(
        "http://{}",
        listener.local_addr().map_err(DaemonError::LocalAddr)?
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
    uc_daemon::http::spawn_serve(listener, app);
    tracing::info!(node = %config.node, backend = options.backend.name(), http = %http_url, endpoints = ?config.store_endpoints, state_dir = %state_dir.display(), "uc-node-agent running");

    let (updates_tx, updates_rx) = mpsc::unbounded_channel();
    let to_store = relay_statuses(shared.clone(), updates_rx);
    let context = Arc::new(Context {
        backend: options.backend,
        state_dir: state_dir.clone(),
        stop_timeout: options.stop_timeout,
        updates: updates_tx,
        span: tracing::Span::current(),
    });
    let heartbeat = NodeHeartbeat {
        url: http_url,
        address: config.address,
        since: unix_seconds(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let writer = tokio::spawn(
        write_statuses(config.clone(), heartbeat, to_store, shared.clone())
            .instrument(tracing::info_span!("heartbeat")),
    );
    let (desired_tx, mut desired_rx) = watch::channel::<Desired>(None);
    let follower = tokio::spawn(
        follow_assignments(config.clone(), desired_tx).instrument(tracing::info_span!("follow")),
    );

    let mut instances = adopt(&context).await;
    let mut rolling = RollingUpdates::new(&config, shared.clone());
    let mut rotate = tokio::time::interval(Duration::from_secs(10));
    // Spec changes waiting for an update slot, and slots to give back.
    let mut retry = tokio::time::interval(Duration::from_millis(500));
    let mut desired: Option<BTreeMap<String, Wanted>> = None;
    let mut passes: u64 = 0;
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
            passes += 1;
            let span = tracing::info_span!("reconcile", pass = passes, wanted = desired.len());
            async {
                reconcile(&context, &mut instances, desired, &mut rolling).await;
                rolling.release_finished(&instances, desired).await;
            }
            .instrument(span)
            .await;
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
