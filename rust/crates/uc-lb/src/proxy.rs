//! What every proxy (TCP, UDP, HTTP) of one listener shares: its name,
//! pool, metrics and timeouts, and connection ids for the log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uc_daemon::metrics::Counter;

use crate::metrics::{self, Metrics};
use crate::pool::Pool;

/// Daemon-wide timeouts (flags; the schema has none per listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting to a backend (each try).
    pub connect: Duration,
    /// A client's request head (slowloris), TLS handshake, and an idle
    /// keep-alive connection.
    pub client: Duration,
    /// A backend's response head (then 504).
    pub response: Duration,
    /// How long a drained backend's open connections may go on.
    pub drain: Duration,
    /// A UDP client session without packets either way.
    pub udp_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(3),
            client: Duration::from_secs(10),
            response: Duration::from_secs(30),
            drain: Duration::from_secs(30),
            udp_idle: Duration::from_secs(30),
        }
    }
}

/// Connection (and request) ids, unique in the process, for spans.
pub fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Backends tried per connection or request before giving up.
pub const TRIES: usize = 3;

pub struct Context {
    pub name: String,
    pub pool: Arc<Pool>,
    pub metrics: Arc<Metrics>,
    pub timeouts: Timeouts,
    pub proxy_protocol: bool,
    /// The listener's bound address (the PROXY header's destination).
    pub local: SocketAddr,
}

impl Context {
    pub fn labels(&self) -> metrics::ListenerLabels {
        metrics::listener(&self.name)
    }

    /// Bytes copied between a client and `backend`.
    pub fn bytes(&self, backend: SocketAddr, inbound: u64, outbound: u64) {
        for (direction, n) in [("in", inbound), ("out", outbound)] {
            if n > 0 {
                self.bytes_counter(backend, direction).inc_by(n);
            }
        }
    }

    /// The counter of bytes to (`in`) or from (`out`) `backend`.
    pub fn bytes_counter(&self, backend: SocketAddr, direction: &'static str) -> Counter {
        self.metrics
            .bytes
            .get_or_create(&metrics::bytes(&self.name, backend, direction))
            .clone()
    }

    pub fn backend_latency(&self, backend: SocketAddr, took: Duration) {
        self.metrics
            .backend_latency
            .get_or_create(&metrics::backend(&self.name, backend))
            .observe(took.as_secs_f64());
    }

    pub fn connect_failed(&self, backend: SocketAddr) {
        self.metrics
            .backend_failures
            .get_or_create(&metrics::backend(&self.name, backend))
            .inc();
    }
}

/// Counts a client connection as open until dropped.
pub struct Open {
    gauge: uc_daemon::metrics::Gauge,
}

impl Open {
    pub fn new(ctx: &Context) -> Open {
        ctx.metrics.connections.get_or_create(&ctx.labels()).inc();
        let gauge = ctx.metrics.active.get_or_create(&ctx.labels()).clone();
        gauge.inc();
        Open { gauge }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
