//! The agent's HTTP endpoint: `/health`, `/metrics`, `/instances` (their
//! statuses as JSON) and `/logs/<instance>?lines=N` (what `uc logs` reads).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use uc_types::InstanceState;

use crate::logs;
use crate::shared::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/instances", get(instances))
        .route("/logs/{instance}", get(instance_logs))
        .with_state(shared)
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let connected = shared.store_connected.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "node": shared.node,
        "storeConnected": connected,
        "instances": shared.statuses.lock().map_or(0, |s| s.len()),
    });
    // The agent is alive either way; instances keep running without the store.
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let statuses = shared
        .statuses
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let mut by_state: BTreeMap<&str, usize> =
        BTreeMap::from([("starting", 0), ("healthy", 0), ("unhealthy", 0)]);
    for status in statuses.values() {
        let state = match status.state {
            InstanceState::Starting => "starting",
            InstanceState::Healthy => "healthy",
            InstanceState::Unhealthy => "unhealthy",
        };
        *by_state.entry(state).or_default() += 1;
    }
    let restarts: u64 = statuses.values().map(|s| u64::from(s.restarts)).sum();
    let mut text = String::from(
        "# HELP uc_node_agent_instances Instances on this node by state.\n# TYPE uc_node_agent_instances gauge\n",
    );
    for (state, n) in by_state {
        text += &format!("uc_node_agent_instances{{state=\"{state}\"}} {n}\n");
    }
    text += &format!(
        "# HELP uc_node_agent_instance_restarts Restarts of the current instances.\n# TYPE uc_node_agent_instance_restarts gauge\nuc_node_agent_instance_restarts {restarts}\n\
         # HELP uc_node_agent_store_connected 1 while the heartbeat lease is held.\n# TYPE uc_node_agent_store_connected gauge\nuc_node_agent_store_connected {}\n\
         # HELP uc_node_agent_backend How instances run.\n# TYPE uc_node_agent_backend gauge\nuc_node_agent_backend{{backend=\"{}\"}} 1\n",
        u8::from(shared.store_connected.load(Ordering::Relaxed)),
        shared.backend.name()
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

async fn instances(State(shared): State<Arc<Shared>>) -> Response {
    let statuses = shared
        .statuses
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&statuses).unwrap_or_default(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LogQuery {
    lines: Option<usize>,
}

async fn instance_logs(
    State(shared): State<Arc<Shared>>,
    Path(instance): Path<String>,
    Query(query): Query<LogQuery>,
) -> Response {
    let valid = !instance.is_empty()
        && instance
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !instance.starts_with('.');
    if !valid {
        return (StatusCode::BAD_REQUEST, "bad instance name\n").into_response();
    }
    let path = logs::log_path(&shared.state_dir, &instance);
    match logs::tail(&path, query.lines.unwrap_or(100).min(100_000)) {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => (
            StatusCode::NOT_FOUND,
            format!("no log for instance {instance} on node {}\n", shared.node),
        )
            .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")).into_response(),
    }
}
