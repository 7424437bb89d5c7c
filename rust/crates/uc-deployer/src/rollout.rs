//! Rollouts in waves: take each node of the current wave out of traffic and
//! wait for its open connections (`drain`), give it its new desired system,
//! wait until every one reports it healthy within the health gate, put it
//! back in traffic, then go on; halt on the first failure and, with
//! auto-revert, give the switched nodes their previous system back. All
//! state is in the store, so a restarted deployer resumes where it stopped.

mod drain;

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, WatchOptions};
use tracing::Instrument;
use uc_types::{
    keys, unix_seconds, DesiredSystem, ObservedSystem, RolloutRecord, RolloutState, SystemState,
    TrafficDrain,
};

use self::drain::{Health, NodeView, Step};
use crate::cache::Cache;
use crate::store::{compare_and_put, get_json, Store};

/// Waits for any change under `/uc/v1/` after `revision`, or `timeout`.
async fn changed_since(
    client: &mut Client,
    revision: i64,
    timeout: Duration,
) -> Result<(), etcd_client::Error> {
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut stream = client.watch(keys::PREFIX, Some(options)).await?;
    let _ = tokio::time::timeout(timeout, stream.message()).await;
    Ok(())
}

pub async fn run(mut client: Client, cache: Arc<Cache>) -> Result<(), etcd_client::Error> {
    let mut served_for = None;
    // The rollout and state whose drains were last swept.
    let mut swept = None;
    loop {
        let response = client.get(keys::rollout_current(), None).await?;
        let store_revision = response.header().map_or(0, |h| h.revision());
        let record = response.kvs().first().and_then(|kv| {
            serde_json::from_slice::<RolloutRecord>(kv.value())
                .map(|r| (r, kv.mod_revision()))
                .map_err(|e| tracing::error!(%e, "unreadable rollout record"))
                .ok()
        });
        let Some((record, revision)) = record else {
            changed_since(&mut client, store_revision, Duration::from_secs(30)).await?;
            continue;
        };
        if served_for != Some(record.id) {
            let mut roots: Vec<String> = record.targets.values().cloned().collect();
            roots.extend(record.previous.values().flatten().cloned());
            match cache.set_roots(&roots).await {
                Ok(paths) => tracing::info!(
                    rollout = record.id,
                    paths,
                    "binary cache serves the rollout's systems"
                ),
                Err(err) => tracing::error!(%err, "cannot serve the rollout's systems"),
            }
            served_for = Some(record.id);
        }
        if swept != Some((record.id, record.state)) {
            // Drained nodes of a halted or replaced rollout go back in traffic.
            let running = (record.state == RolloutState::Running).then_some(record.id);
            drain::restore_all(&mut client, running).await?;
            swept = Some((record.id, record.state));
        }
        if record.state != RolloutState::Running {
            changed_since(&mut client, store_revision, Duration::from_secs(30)).await?;
            continue;
        }
        let span = tracing::info_span!("rollout_step", rollout = record.id, wave = record.wave + 1);
        step(&mut client, record, revision, store_revision)
            .instrument(span)
            .await?;
    }
}

/// One look at the current wave: start it, advance it, fail it, or wait.
async fn step(
    client: &mut Client,
    mut record: RolloutRecord,
    revision: i64,
    store_revision: i64,
) -> Result<(), etcd_client::Error> {
    let Some(wave) = record.waves.get(record.wave).cloned() else {
        record.state = RolloutState::Succeeded;
        compare_and_put(client, &record, revision).await?;
        return Ok(());
    };
    let mut healthy = 0;
    let mut failure = None;
    for node in &wave {
        let span = tracing::info_span!("node", %node);
        match advance_node(client, &record, node).instrument(span).await? {
            NodeProgress::Healthy => healthy += 1,
            NodeProgress::Failed(why) => {
                failure.get_or_insert(why);
            }
            NodeProgress::Waiting => {}
        }
    }
    let waited = unix_seconds().saturating_sub(record.wave_started);
    // The drain bounds the wait for connections before the switch and the
    // wait for the return to rotation after it.
    let gate = record.health_gate_timeout_seconds + 2 * record.drain_timeout_seconds;
    if failure.is_none() && healthy < wave.len() && waited > gate {
        failure = Some(format!(
            "{} of {} nodes did not report healthy within {}s (drain 2 x {}s, health gate {}s)",
            wave.len() - healthy,
            wave.len(),
            gate,
            record.drain_timeout_seconds,
            record.health_gate_timeout_seconds
        ));
    }

    if let Some(why) = failure {
        record.state = RolloutState::Failed;
        record.error = Some(format!("wave {}: {why}", record.wave + 1));
        tracing::error!(rollout = record.id, error = ?record.error, "rollout failed; halting");
        if compare_and_put(client, &record, revision).await? && record.auto_revert {
            revert(client, &record).await?;
        }
    } else if healthy == wave.len() {
        record.wave += 1;
        record.wave_started = unix_seconds();
        if record.wave == record.waves.len() {
            record.state = RolloutState::Succeeded;
            tracing::info!(rollout = record.id, "rollout succeeded");
        } else {
            tracing::info!(
                rollout = record.id,
                wave = record.wave + 1,
                "wave healthy; next wave"
            );
        }
        compare_and_put(client, &record, revision).await?;
    } else {
        changed_since(client, store_revision, Duration::from_secs(1)).await?;
    }
    Ok(())
}

/// Where a node of the current wave is.
enum NodeProgress {
    /// Healthy and back in traffic.
    Healthy,
    /// Failed or rolled back: why.
    Failed(String),
    /// Draining, switching, or not reported yet.
    Waiting,
}

/// Takes `node` one step further (`drain::next`): out of traffic, its new
/// system once its connections are done, back in traffic once healthy.
async fn advance_node(
    client: &mut Client,
    record: &RolloutRecord,
    node: &str,
) -> Result<NodeProgress, etcd_client::Error> {
    let generation = record.forward_generation();
    let desired = DesiredSystem {
        store_path: record.targets[node].clone(),
        generation,
        rollout: Some(record.id.to_string()),
    };
    let current: Option<(DesiredSystem, i64)> =
        get_json(client, &keys::desired_system(node)).await?;
    let switched = current.map(|(d, _)| d) == Some(desired.clone());
    let observed: Option<(ObservedSystem, i64)> =
        get_json(client, &keys::observed_system(node)).await?;
    let health = match observed.map(|(o, _)| o) {
        Some(o) if o.generation == generation && o.state == SystemState::Healthy => Health::Healthy,
        Some(o)
            if o.generation == generation
                && matches!(o.state, SystemState::Failed | SystemState::RolledBack) =>
        {
            Health::Failed(format!(
                "{node}: {:?}: {}",
                o.state,
                o.error.unwrap_or_default()
            ))
        }
        _ => Health::Pending,
    };
    let drain = drain::read(client, node).await?;
    // What uc-lbs list at the node: read only while it matters.
    let listed = if switched {
        Vec::new()
    } else {
        drain::node_backends(client, node).await?
    };
    let ours = drain.as_ref().filter(|d| d.rollout == Some(record.id));
    let returning = match ours {
        Some(d) if switched && !d.drained && !d.serving.is_empty() => {
            drain::returning(&drain::lb_statuses(client).await?, &d.serving)
        }
        _ => 0,
    };
    let open = drain::open(&listed);
    let view = NodeView {
        switched,
        drain: drain.clone(),
        open,
        returning,
        health,
    };
    let now = unix_seconds();
    Ok(
        match drain::next(&view, record.id, now, record.drain_timeout_seconds) {
            Step::Drain => {
                let serving = drain::serving(&listed);
                tracing::info!(
                    rollout = record.id,
                    node,
                    backends = serving.len(),
                    "taking node out of traffic"
                );
                let written = drain::record(record.id, record.wave, now, serving);
                drain::write(client, node, &written).await?;
                NodeProgress::Waiting
            }
            Step::WaitForConnections => {
                tracing::debug!(node, open, "waiting for open connections");
                NodeProgress::Waiting
            }
            Step::Switch { timed_out } => {
                if timed_out && open > 0 {
                    tracing::warn!(
                        node,
                        open,
                        timeout = record.drain_timeout_seconds,
                        "drain timeout: switching with backends still open"
                    );
                }
                tracing::info!(rollout = record.id, wave = record.wave + 1, node, path = %desired.store_path, "switching node");
                client
                    .put(
                        keys::desired_system(node),
                        serde_json::to_vec(&desired).unwrap_or_default(),
                        None,
                    )
                    .await?;
                NodeProgress::Waiting
            }
            Step::WaitForHealth => NodeProgress::Waiting,
            Step::Restore => {
                if let Some(drain) = ours {
                    let restored = TrafficDrain {
                        drained: false,
                        since: now,
                        ..drain.clone()
                    };
                    tracing::info!(rollout = record.id, node, "healthy; back in traffic");
                    drain::write(client, node, &restored).await?;
                }
                NodeProgress::Waiting
            }
            Step::WaitForReturn => {
                tracing::debug!(node, returning, "waiting for backends back in rotation");
                NodeProgress::Waiting
            }
            Step::Forget => {
                if returning > 0 {
                    tracing::warn!(
                        node,
                        returning,
                        timeout = record.drain_timeout_seconds,
                        "backends not back in rotation in time; going on"
                    );
                }
                drain::forget(client, node, record.id).await?;
                NodeProgress::Healthy
            }
            Step::Done => NodeProgress::Healthy,
            Step::Failed(why) => NodeProgress::Failed(why),
        },
    )
}

/// Gives every node the rollout touched its previous system back.
async fn revert(client: &mut Client, record: &RolloutRecord) -> Result<(), etcd_client::Error> {
    let touched = record.waves.iter().take(record.wave + 1).flatten();
    for node in touched {
        let Some(Some(previous)) = record.previous.get(node) else {
            continue;
        };
        let desired = DesiredSystem {
            store_path: previous.clone(),
            generation: record.revert_generation(),
            rollout: Some(record.id.to_string()),
        };
        let span = tracing::info_span!("revert", rollout = record.id, %node);
        async {
            tracing::warn!(rollout = record.id, node, path = %previous, "reverting node");
            client
                .put(
                    keys::desired_system(node),
                    serde_json::to_vec(&desired).unwrap_or_default(),
                    None,
                )
                .await
        }
        .instrument(span)
        .await?;
    }
    Ok(())
}

/// Connects to the store at `endpoints` (retrying), shares the connection
/// through `store` and runs the rollout engine on it, restarting it after
/// store errors. Runs until the process ends.
pub async fn run_connected(endpoints: Vec<String>, store: Store, cache: Arc<Cache>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match Client::connect(&endpoints, None).await {
            Ok(client) => {
                let _ = store.set(client.clone());
                tracing::info!(?endpoints, "connected to the store");
                if let Err(err) = run(client, cache.clone()).await {
                    tracing::warn!(%err, "rollout engine stopped; restarting");
                }
            }
            Err(err) => tracing::warn!(%err, ?endpoints, retry_in = ?backoff, "store unreachable"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
