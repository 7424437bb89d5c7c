//! `/health` and `/metrics` on the HTTP listener.
//!
//! `/health`: 503 `starting` until the listeners were first read from the
//! store; 503 `failing` while a listener cannot serve (its port cannot be
//! bound, its TLS files or declaration are unusable), naming it; 200
//! `degraded` while the store is unreachable (serving the last listeners);
//! else 200 `ok`. The body lists every listener with its backends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::report::Reports;
use crate::supervisor::Desired;
use uc_types::LbListenerStatus;

#[derive(Clone)]
pub struct Shared {
    pub node: String,
    pub reports: Arc<Reports>,
    pub metrics: Arc<Metrics>,
    pub connected: Arc<AtomicBool>,
    pub desired: watch::Receiver<Option<Arc<Desired>>>,
}

#[derive(Serialize)]
struct HealthBody {
    status: &'static str,
    /// Listeners that do not serve, with why.
    failing: BTreeMap<String, String>,
    store_connected: bool,
    listeners: BTreeMap<String, LbListenerStatus>,
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(uc_daemon::http::request_span))
        .with_state(shared)
}

async fn health(State(shared): State<Shared>) -> impl IntoResponse {
    let listeners = shared.reports.statuses(&shared.node);
    let failing: BTreeMap<String, String> = listeners
        .iter()
        .filter_map(|(name, s)| s.error.clone().map(|e| (name.clone(), e)))
        .collect();
    let connected = shared.connected.load(Ordering::Relaxed);
    let started = shared.desired.borrow().is_some();
    let (code, status) = if !started {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    } else if !failing.is_empty() {
        (StatusCode::SERVICE_UNAVAILABLE, "failing")
    } else if !connected {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ok")
    };
    let body = HealthBody {
        status,
        failing,
        store_connected: connected,
        listeners,
    };
    let text = serde_json::to_string(&body).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], text)
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, uc_daemon::metrics::CONTENT_TYPE)],
        shared.metrics.render(),
    )
}
