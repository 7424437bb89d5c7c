//! `/metrics` (OpenMetrics, names `uc_lb_…`): per listener connections,
//! requests, bytes and latency; per backend health, open and total
//! connections, connect failures; how current the config is.

use uc_daemon::metrics::prometheus_client::metrics::histogram::Histogram;
use uc_daemon::metrics::{Counter, Family, Gauge, Registry};

pub type ListenerLabels = [(&'static str, String); 1];
pub type BackendLabels = [(&'static str, String); 2];
pub type RequestLabels = [(&'static str, String); 2];
pub type BytesLabels = [(&'static str, String); 3];

pub struct Metrics {
    registry: Registry,
    pub listener_up: Family<ListenerLabels, Gauge>,
    pub connections: Family<ListenerLabels, Counter>,
    pub active: Family<ListenerLabels, Gauge>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<ListenerLabels, Histogram, fn() -> Histogram>,
    /// Per listener and backend; direction `in` (client to backend) or `out`.
    pub bytes: Family<BytesLabels, Counter>,
    pub backend_latency: Family<BackendLabels, Histogram, fn() -> Histogram>,
    pub backend_up: Family<BackendLabels, Gauge>,
    pub backend_active: Family<BackendLabels, Gauge>,
    pub backend_selected: Family<BackendLabels, Counter>,
    pub backend_failures: Family<BackendLabels, Counter>,
    pub reloads: Counter,
    pub store_connected: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let histogram: fn() -> Histogram = uc_daemon::metrics::latency_histogram;
        let mut metrics = Metrics {
            registry: uc_daemon::metrics::registry("uc_lb"),
            listener_up: Family::default(),
            connections: Family::default(),
            active: Family::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(histogram),
            bytes: Family::default(),
            backend_latency: Family::new_with_constructor(histogram),
            backend_up: Family::default(),
            backend_active: Family::default(),
            backend_selected: Family::default(),
            backend_failures: Family::default(),
            reloads: Counter::default(),
            store_connected: Gauge::default(),
        };
        let r = &mut metrics.registry;
        r.register(
            "listener_up",
            "1 while the listener's socket is bound and serving, 0 when it cannot be bound",
            metrics.listener_up.clone(),
        );
        r.register(
            "connections",
            "Client connections accepted (UDP: client sessions)",
            metrics.connections.clone(),
        );
        r.register(
            "active_connections",
            "Client connections open now",
            metrics.active.clone(),
        );
        r.register(
            "requests",
            "HTTP requests answered, by status code (502/503/504 are uc-lb's own)",
            metrics.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from an HTTP request's head to its response head",
            metrics.latency.clone(),
        );
        r.register(
            "bytes",
            "Bytes proxied, by direction (in: client to backend)",
            metrics.bytes.clone(),
        );
        r.register(
            "backend_latency_seconds",
            "TCP: time to connect to the backend; HTTP: time to the backend's response head",
            metrics.backend_latency.clone(),
        );
        r.register(
            "backend_up",
            "1 while the backend is in rotation (probes pass, not draining)",
            metrics.backend_up.clone(),
        );
        r.register(
            "backend_active_connections",
            "Connections (L7: requests) open to the backend now",
            metrics.backend_active.clone(),
        );
        r.register(
            "backend_selected",
            "Connections (L7: requests) sent to the backend",
            metrics.backend_selected.clone(),
        );
        r.register(
            "backend_connect_failures",
            "Connections to the backend that failed",
            metrics.backend_failures.clone(),
        );
        r.register(
            "reloads",
            "Listener changes applied from the store",
            metrics.reloads.clone(),
        );
        r.register(
            "store_connected",
            "1 while the watch on the store is up",
            metrics.store_connected.clone(),
        );
        metrics
    }

    /// For metrics registered elsewhere (`vip::VipMetrics`), before sharing.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn render(&self) -> String {
        uc_daemon::metrics::render(&self.registry)
    }
}

pub fn listener(name: &str) -> ListenerLabels {
    [("listener", name.to_owned())]
}

pub fn bytes(
    listener: &str,
    backend: std::net::SocketAddr,
    direction: &'static str,
) -> BytesLabels {
    [
        ("listener", listener.to_owned()),
        ("backend", backend.to_string()),
        ("direction", direction.to_owned()),
    ]
}

pub fn backend(listener: &str, backend: std::net::SocketAddr) -> BackendLabels {
    [
        ("listener", listener.to_owned()),
        ("backend", backend.to_string()),
    ]
}
