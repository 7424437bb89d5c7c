//! `/metrics` (OpenMetrics text, see `metrics`) and `/health` on the
//! metrics URLs.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use uc_daemon::http::metrics_response;

use crate::metrics::Metrics;
use crate::node::Node;

pub fn router(node: Arc<Node>, metrics: Arc<Metrics>) -> Router {
    let health_node = node.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || async move { metrics_response(metrics.render(&node)) }),
        )
        .route("/health", get(move || async move { health(&health_node) }))
}

/// As etcd's /health: healthy when the member knows a leader.
fn health(node: &Node) -> (StatusCode, &'static str) {
    match node.leader() {
        Some(_) => (StatusCode::OK, "{\"health\":\"true\"}\n"),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"health\":\"false\",\"reason\":\"no leader\"}\n",
        ),
    }
}
