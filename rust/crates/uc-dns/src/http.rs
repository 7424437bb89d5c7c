//! `/health` and `/metrics` on the HTTP listener.
//!
//! `/health` is 200 with `"status": "ok"`, or 200 with `"degraded"` while
//! the store is unreachable (queries are still answered from the last
//! snapshot, so a load balancer should keep sending them), and 503 with
//! `"starting"` until the first snapshot (every query is REFUSED then).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use uc_daemon::http::{json_response, metrics_response};

use crate::metrics::Metrics;
use crate::snapshot::Published;
use crate::status::{Health, SyncStatus};

#[derive(Clone)]
pub struct Shared {
    pub published: Arc<Published>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<SyncStatus>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthBody {
    status: &'static str,
    /// Served zones, by apex.
    zones: Vec<String>,
    /// Store revision of the served snapshot.
    revision: i64,
    last_sync_age_seconds: Option<f64>,
    error: Option<String>,
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(uc_daemon::http::request_span))
        .with_state(shared)
}

async fn health(State(shared): State<Shared>) -> impl IntoResponse {
    let snapshot = shared.published.load();
    let health = shared.status.health(snapshot.generation > 0);
    let mut zones: Vec<String> = snapshot.zones().map(|z| z.apex.to_string()).collect();
    zones.sort();
    let body = HealthBody {
        status: health.as_str(),
        zones,
        revision: snapshot.revision,
        last_sync_age_seconds: shared.status.since_contact().map(|age| age.as_secs_f64()),
        error: shared.status.last_error(),
    };
    let code = match health {
        Health::Starting => StatusCode::SERVICE_UNAVAILABLE,
        Health::Ok | Health::Degraded => StatusCode::OK,
    };
    json_response(code, &body)
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    // Never in contact: the age is at least the time since start.
    let age = shared
        .status
        .since_contact()
        .unwrap_or_else(|| shared.status.uptime())
        .as_secs_f64();
    shared.metrics.last_sync_age.set(age);
    metrics_response(shared.metrics.render())
}
