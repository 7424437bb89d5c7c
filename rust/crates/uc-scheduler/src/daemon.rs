//! The scheduler as a daemon: campaigns for leadership; as the leader,
//! watches the keyspace and, on every relevant change (and when a silent
//! node's grace period ends), reads the store, computes the plan and writes
//! the difference in transactions guarded by its leadership. Serves /health
//! and /metrics.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::middleware;
use axum::routing::get;
use axum::Router;
use etcd_client::{Client, WatchOptions};
use tokio::time::Instant;
use tracing::Instrument;
use uc_daemon::http::{json_response, metrics_response};
use uc_daemon::metrics::{self, Counter, Gauge, Registry};
use uc_types::keys::{self, Key};
use uc_types::SchedulerConfig;

use crate::leader::{self, LeaderError, Leadership};
use crate::placement;
use crate::view::{Liveness, StoreView};

/// At most this many operations per transaction (etcd's default limit is 128).
const OPS_PER_TXN: usize = 64;
/// Changes arriving this close together are handled in one pass.
const SETTLE: Duration = Duration::from_millis(50);

/// How this scheduler runs, besides its config file.
#[derive(Debug, Clone)]
pub struct Options {
    /// Names this scheduler in the leader key.
    pub holder: String,
    /// TTL of the leader lease: how long a dead leader blocks a standby.
    pub leader_ttl: Duration,
}

#[derive(Default)]
struct Status {
    leader: AtomicBool,
    /// The lease of the held leadership (0: none), revoked on shutdown.
    lease: AtomicI64,
    metrics: Metrics,
}

impl Status {
    fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::SeqCst);
        self.metrics.leader.set(i64::from(leader));
    }
}

/// The scheduler's `/metrics` (`uc_scheduler_…`).
#[derive(Default)]
struct Metrics {
    leader: Gauge,
    elections_won: Counter,
    passes: Counter,
    writes: Counter,
    unplaced: Gauge,
}

impl Metrics {
    fn registry(&self) -> Registry {
        let mut registry = metrics::registry("uc_scheduler");
        registry.register(
            "leader",
            "1 while this scheduler is the active one",
            self.leader.clone(),
        );
        registry.register(
            "elections_won",
            "Times this scheduler became the leader",
            self.elections_won.clone(),
        );
        registry.register(
            "passes",
            "Placement passes run as the leader",
            self.passes.clone(),
        );
        registry.register(
            "writes",
            "Assignment and status keys written or deleted",
            self.writes.clone(),
        );
        registry.register(
            "unplaced_replicas",
            "Replicas no node accepts, at the last pass",
            self.unplaced.clone(),
        );
        registry
    }
}

/// Why the scheduler could not run, or could not make a plan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP endpoint's address could not be bound; uc-daemon says why.
    #[error(transparent)]
    Listen(#[from] uc_daemon::BindError),
    #[error("store: {0}")]
    Store(#[from] etcd_client::Error),
}

pub async fn run(
    config: SchedulerConfig,
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let status = Arc::new(Status::default());
    let listener = uc_daemon::bind_http(config.http_listen).await?;
    let app = router(status.clone(), options.holder.clone());
    let http = uc_daemon::http::spawn_serve(listener, app);
    let grace = Duration::from_secs(config.node_loss_grace_seconds);
    tracing::info!(holder = %options.holder, endpoints = ?config.store_endpoints, http = %config.http_listen, ?grace, "uc-scheduler running");
    let span = tracing::info_span!("scheduler", holder = %options.holder);
    let lead = lead_forever(&config.store_endpoints, &options, grace, &status).instrument(span);
    let result = tokio::select! {
        () = lead => Ok(()),
        () = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    // Hand over at once rather than after the lease runs out.
    let lease = status.lease.swap(0, Ordering::SeqCst);
    if lease != 0 {
        if let Ok(mut client) = Client::connect(&config.store_endpoints, None).await {
            let _ = client.lease_revoke(lease).await;
            tracing::info!(lease, "leadership handed back");
        }
    }
    http.abort();
    result
}

async fn lead_forever(endpoints: &[String], options: &Options, grace: Duration, status: &Status) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let won = status.metrics.elections_won.get();
        if let Err(err) = lead_once(endpoints, options, grace, status).await {
            tracing::warn!(%err, retry_in = ?backoff, "not leading");
        }
        if status.metrics.elections_won.get() != won {
            // It led for a while: the store is reachable, retry soon.
            backoff = Duration::from_millis(200);
        }
        status.set_leader(false);
        status.lease.store(0, Ordering::SeqCst);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn lead_once(
    endpoints: &[String],
    options: &Options,
    grace: Duration,
    status: &Status,
) -> Result<(), LeaderError> {
    let mut client = Client::connect(endpoints, None).await?;
    let leadership = leader::campaign(&mut client, &options.holder, options.leader_ttl).await?;
    status.lease.store(leadership.lease, Ordering::SeqCst);
    status.set_leader(true);
    status.metrics.elections_won.inc();
    let span = tracing::info_span!("leading", lease = leadership.lease);
    async {
        let mut keeper = client.clone();
        let result = tokio::select! {
            err = leadership.keep_alive(&mut keeper, options.leader_ttl) => Err(err),
            result = schedule(&mut client, &leadership, grace, status) => result,
        };
        tracing::warn!("stepping down");
        let _ = client.lease_revoke(leadership.lease).await;
        result
    }
    .instrument(span)
    .await
}

/// The leader's loop: place on every change until leadership is lost.
async fn schedule(
    client: &mut Client,
    leadership: &Leadership,
    grace: Duration,
    status: &Status,
) -> Result<(), LeaderError> {
    let mut liveness = Liveness::new(grace);
    // Watch first, then read: no change can fall between the two.
    let mut stream = client
        .watch(keys::PREFIX, Some(WatchOptions::new().with_prefix()))
        .await?;
    loop {
        let span = tracing::info_span!(
            "pass",
            pass = status.metrics.passes.get() + 1,
            revision = tracing::field::Empty
        );
        let deadline = pass(client, leadership, &mut liveness, status)
            .instrument(span)
            .await?;
        // Wait for a change that matters, or for a silent node's grace to end.
        loop {
            let message = match deadline {
                Some(at) => match tokio::time::timeout_at(at, stream.message()).await {
                    Ok(message) => message?,
                    Err(_) => break,
                },
                None => stream.message().await?,
            };
            let Some(response) = message else {
                return Err(LeaderError::WatchEnded(keys::PREFIX.to_owned()));
            };
            if response.canceled() {
                return Err(LeaderError::WatchEnded(keys::PREFIX.to_owned()));
            }
            let relevant = response.events().iter().any(|e| {
                e.kv()
                    .is_some_and(|kv| relevant(&String::from_utf8_lossy(kv.key())))
            });
            if relevant {
                // Let a burst of changes land before reading.
                let settle = Instant::now() + SETTLE;
                while let Ok(more) = tokio::time::timeout_at(settle, stream.message()).await {
                    if more?.is_none() {
                        return Err(LeaderError::WatchEnded(keys::PREFIX.to_owned()));
                    }
                }
                break;
            }
        }
    }
}

/// Whether a change of `key` can change the plan.
fn relevant(key: &str) -> bool {
    matches!(
        keys::parse(key),
        Some(
            Key::ManifestCurrent
                | Key::ServiceSpec { .. }
                | Key::ServiceAssignment { .. }
                | Key::Heartbeat { .. }
                | Key::NodeCordon { .. }
                | Key::InstanceStatus { .. }
        )
    )
}

/// One placement pass; returns when the next silent node turns lost.
async fn pass(
    client: &mut Client,
    leadership: &Leadership,
    liveness: &mut Liveness,
    status: &Status,
) -> Result<Option<Instant>, LeaderError> {
    let view = StoreView::read(client).await?;
    tracing::Span::current().record("revision", view.revision);
    status.metrics.passes.inc();
    let now = std::time::Instant::now();
    let Some(manifest) = &view.manifest else {
        tracing::debug!("no manifest yet");
        return Ok(None);
    };
    liveness.observe(manifest.manifest.nodes.keys(), &view.heartbeats, now);
    let Some(cluster) = view.cluster(liveness, now) else {
        return Ok(None);
    };
    let plan = placement::place(&cluster);
    let unplaced: u64 = plan.status.values().map(|s| u64::from(s.unplaced)).sum();
    status
        .metrics
        .unplaced
        .set(i64::try_from(unplaced).unwrap_or(i64::MAX));
    for (service, s) in &plan.status {
        tracing::debug!(service, unplaced = s.unplaced, stuck = ?s.stuck, reasons = ?s.reasons, "not fully placed");
    }
    let ops = view.changes(&plan);
    if !ops.is_empty() {
        tracing::info!(
            revision = view.revision,
            writes = ops.len(),
            unplaced,
            "placing"
        );
        let count = ops.len() as u64;
        let mut ops = ops;
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(OPS_PER_TXN));
            leadership.txn(client, ops).await?;
            ops = rest;
        }
        status.metrics.writes.inc_by(count);
    }
    let deadline = liveness.next_deadline(now).map(|at| {
        // Just after the grace period ends, so that the node counts as lost.
        Instant::from_std(at) + Duration::from_millis(10)
    });
    Ok(deadline)
}

/// The plan for the store as it is now, as JSON, written nowhere. Nodes
/// without a heartbeat count as briefly silent: their instances stay.
pub async fn dry_run(endpoints: &[String]) -> Result<String, Error> {
    let mut client = Client::connect(endpoints, None).await?;
    let view = StoreView::read(&mut client).await?;
    let now = std::time::Instant::now();
    let mut liveness = Liveness::new(Duration::from_secs(u64::MAX / 4));
    let Some(manifest) = &view.manifest else {
        return Ok("null".to_owned());
    };
    liveness.observe(manifest.manifest.nodes.keys(), &view.heartbeats, now);
    let Some(cluster) = view.cluster(&liveness, now) else {
        return Ok("null".to_owned());
    };
    let plan = placement::place(&cluster);
    let json = serde_json::json!({
        "revision": view.revision,
        "assignments": plan.assignments,
        "status": plan.status,
    });
    Ok(serde_json::to_string_pretty(&json).unwrap_or_default())
}

fn router(status: Arc<Status>, holder: String) -> Router {
    let health = {
        let status = status.clone();
        move || async move {
            let body = serde_json::json!({
                "status": "ok",
                "holder": holder,
                "leader": status.leader.load(Ordering::SeqCst),
            });
            json_response(StatusCode::OK, &body)
        }
    };
    let registry = Arc::new(status.metrics.registry());
    let metrics = move || {
        let body = metrics::render(&registry);
        async move { metrics_response(body) }
    };
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn(uc_daemon::http::request_span))
}

#[cfg(test)]
mod tests {
    use super::{relevant, Status};

    #[test]
    fn metrics_keep_their_names() {
        let status = Status::default();
        let registry = status.metrics.registry();
        status.set_leader(true);
        status.metrics.elections_won.inc();
        status.metrics.writes.inc_by(3);
        let text = uc_daemon::metrics::render(&registry);
        uc_testkit::assert_metrics(
            &text,
            &[
                "uc_scheduler_leader 1\n",
                "uc_scheduler_elections_won_total 1\n",
                "uc_scheduler_passes_total 0\n",
                "uc_scheduler_writes_total 3\n",
                "uc_scheduler_unplaced_replicas 0\n",
            ],
        );
    }

    #[test]
    fn only_inputs_of_placement_wake_the_leader() {
        assert!(relevant("/uc/v1/manifest/current"));
        assert!(relevant("/uc/v1/services/web/spec"));
        assert!(relevant("/uc/v1/services/web/assignments/0"));
        assert!(relevant("/uc/v1/nodes/w1/heartbeat"));
        assert!(relevant("/uc/v1/nodes/w1/cordon"));
        assert!(relevant("/uc/v1/instances/w1/web-0/status"));
        assert!(!relevant("/uc/v1/scheduler/status/web"));
        assert!(!relevant("/uc/v1/scheduler/leader"));
        assert!(!relevant("/uc/v1/nodes/w1/observed-system"));
        assert!(!relevant("/uc/v1/manifest/history/00000000000000000001"));
    }
}
