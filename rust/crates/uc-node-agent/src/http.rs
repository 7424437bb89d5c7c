//! The agent's HTTP endpoint: `/health`, `/metrics`, `/instances` (their
//! statuses as JSON) and `/logs/<instance>?lines=N` (what `uc logs` reads).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use uc_daemon::http::{json_response, metrics_response};
use uc_daemon::metrics::{self, Family, Gauge, Registry};
use uc_types::InstanceState;

use crate::logs;
use crate::shared::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    let metrics = Arc::new(Metrics::new());
    let metrics_route = {
        let shared = shared.clone();
        move || {
            let body = metrics.render(&shared);
            async move { metrics_response(body) }
        }
    };
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_route))
        .route("/instances", get(instances))
        .route("/logs/{instance}", get(instance_logs))
        .layer(middleware::from_fn(uc_daemon::http::request_span))
        .with_state(shared)
}

type Labels = [(&'static str, &'static str); 1];

/// The agent's `/metrics` (`uc_node_agent_…`), set from [`Shared`] when
/// scraped.
struct Metrics {
    registry: Registry,
    /// By `state`: starting, healthy, unhealthy.
    instances: Family<Labels, Gauge>,
    instance_restarts: Gauge,
    store_connected: Gauge,
    /// By `backend`: the one in use is 1.
    backend: Family<Labels, Gauge>,
}

impl Metrics {
    fn new() -> Metrics {
        let instances = Family::<Labels, Gauge>::default();
        let instance_restarts = Gauge::default();
        let store_connected = Gauge::default();
        let backend = Family::<Labels, Gauge>::default();
        let mut registry = metrics::registry("uc_node_agent");
        registry.register(
            "instances",
            "Instances on this node by state",
            instances.clone(),
        );
        registry.register(
            "instance_restarts",
            "Restarts of the current instances",
            instance_restarts.clone(),
        );
        registry.register(
            "store_connected",
            "1 while the heartbeat lease is held",
            store_connected.clone(),
        );
        registry.register("backend", "How instances run", backend.clone());
        Metrics {
            registry,
            instances,
            instance_restarts,
            store_connected,
            backend,
        }
    }

    fn render(&self, shared: &Shared) -> String {
        let statuses = shared
            .statuses
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let mut by_state: BTreeMap<&'static str, i64> =
            BTreeMap::from([("starting", 0), ("healthy", 0), ("unhealthy", 0)]);
        for status in statuses.values() {
            let state = match status.state {
                InstanceState::Starting => "starting",
                InstanceState::Healthy => "healthy",
                InstanceState::Unhealthy => "unhealthy",
            };
            *by_state.entry(state).or_default() += 1;
        }
        for (state, n) in by_state {
            self.instances.get_or_create(&[("state", state)]).set(n);
        }
        let restarts: i64 = statuses.values().map(|s| i64::from(s.restarts)).sum();
        self.instance_restarts.set(restarts);
        self.store_connected
            .set(i64::from(shared.store_connected.load(Ordering::Relaxed)));
        self.backend
            .get_or_create(&[("backend", shared.backend.name())])
            .set(1);
        metrics::render(&self.registry)
    }
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let connected = shared.store_connected.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "node": shared.node,
        "storeConnected": connected,
        "instances": shared.statuses.lock().map_or(0, |s| s.len()),
    });
    // The agent is alive either way; instances keep running without the store.
    json_response(StatusCode::OK, &body)
}

async fn instances(State(shared): State<Arc<Shared>>) -> Response {
    let statuses = shared
        .statuses
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    json_response(StatusCode::OK, &statuses)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, AtomicI64};
    use std::sync::Mutex;

    use super::*;
    use crate::instance::Statuses;
    use crate::runner::Backend;

    #[test]
    fn metrics_keep_their_names() {
        let shared = Shared {
            node: "n1".into(),
            state_dir: PathBuf::from("/nonexistent"),
            backend: Backend::Process,
            statuses: Mutex::new(Statuses::new()),
            store_connected: AtomicBool::new(true),
            lease: AtomicI64::new(0),
        };
        let text = Metrics::new().render(&shared);
        uc_testkit::assert_metrics(
            &text,
            &[
                "uc_node_agent_instances{state=\"healthy\"} 0\n",
                "uc_node_agent_instances{state=\"starting\"} 0\n",
                "uc_node_agent_instances{state=\"unhealthy\"} 0\n",
                "uc_node_agent_instance_restarts 0\n",
                "uc_node_agent_store_connected 1\n",
                "uc_node_agent_backend{backend=\"process\"} 1\n",
            ],
        );
    }
}
