//! What every proxy (TCP, UDP, HTTP) of one listener shares: its name,
//! pool, metrics handles and settings (timeouts, PROXY protocol, the
//! backend client), and connection ids for the log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use uc_daemon::metrics::prometheus_client::metrics::histogram::Histogram;
use uc_daemon::metrics::{Counter, Gauge};
use uc_types::{LbTimeouts, ListenerProtocol};

use crate::l7::backend_tls::BackendTls;
use crate::l7::BackendClient;
use crate::metrics::{self, Metrics};
use crate::pool::Pool;

/// Timeouts: the daemon's (flags), or one listener's (its own over those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting to a backend (each try).
    pub connect: Duration,
    /// A client's request head (slowloris) and TLS handshake; HTTP/1.1
    /// counts it from the end of the previous response too.
    pub client: Duration,
    /// A backend's response head (then 504).
    pub response: Duration,
    /// How long a drained backend's open connections may go on.
    pub drain: Duration,
    /// A UDP session without a datagram from its backend (a UDP
    /// listener's idle timeout defaults to it).
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

impl Timeouts {
    /// A listener's timeouts: its own where it sets them, else these.
    pub fn for_listener(&self, protocol: ListenerProtocol, own: &LbTimeouts) -> Timeouts {
        let secs = |s: Option<u32>, default: Duration| {
            s.map_or(default, |s| Duration::from_secs(u64::from(s)))
        };
        Timeouts {
            connect: secs(own.connect_seconds, self.connect),
            client: secs(own.client_header_seconds, self.client),
            response: secs(own.response_seconds, self.response),
            drain: secs(own.drain_seconds, self.drain),
            udp_idle: match protocol {
                ListenerProtocol::Udp => secs(own.idle_seconds, self.udp_idle),
                _ => self.udp_idle,
            },
        }
    }

    /// How long a listener's connection may pass with no byte either way:
    /// its own idle timeout, else none for TCP, the UDP idle time for UDP
    /// and the client timeout for HTTP; `None`: no limit.
    pub fn idle(&self, protocol: ListenerProtocol, own: &LbTimeouts) -> Option<Duration> {
        let own = own.idle_seconds.map(|s| Duration::from_secs(u64::from(s)));
        own.or(match protocol {
            ListenerProtocol::Tcp => None,
            ListenerProtocol::Udp => Some(self.udp_idle),
            ListenerProtocol::Http | ListenerProtocol::Https => Some(self.client),
        })
    }
}

/// Connection (and request) ids, unique in the process, for spans.
pub fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Backends tried per connection or request before giving up.
pub const TRIES: usize = 3;

/// What a listener's connections read when they start; changed in place
/// (new connections see the change).
pub struct Settings {
    pub timeouts: Timeouts,
    /// No byte either way for this long closes a connection (`None`: never).
    pub idle: Option<Duration>,
    pub proxy_protocol: bool,
    /// The keep-alive pool towards backends (HTTP), with this listener's
    /// connect timeout.
    pub client: BackendClient,
    /// TLS towards backends (HTTP); its probes use it too.
    pub backend_tls: Option<Arc<BackendTls>>,
}

impl Settings {
    pub fn new(
        timeouts: Timeouts,
        idle: Option<Duration>,
        proxy_protocol: bool,
        backend_tls: Option<Arc<BackendTls>>,
    ) -> Settings {
        Settings {
            client: crate::l7::backend_client(&timeouts, backend_tls.clone()),
            backend_tls,
            timeouts,
            idle,
            proxy_protocol,
        }
    }
}

/// A listener's metrics, looked up once (not per connection or request).
pub struct ListenerMetrics {
    pub connections: Counter,
    pub active: Gauge,
    pub latency: Histogram,
    /// Requests by status code 100–599, each looked up on first use.
    codes: Vec<OnceLock<Counter>>,
}

impl ListenerMetrics {
    fn new(metrics: &Metrics, name: &str) -> ListenerMetrics {
        let labels = metrics::listener(name);
        // One lookup per statement (see pool::BackendMetrics::new).
        let connections = metrics.connections.get_or_create(&labels).clone();
        let active = metrics.active.get_or_create(&labels).clone();
        let latency = metrics.latency.get_or_create(&labels).clone();
        ListenerMetrics {
            connections,
            active,
            latency,
            codes: (100..600).map(|_| OnceLock::new()).collect(),
        }
    }
}

pub struct Context {
    pub name: String,
    pub pool: Arc<Pool>,
    pub metrics: Arc<Metrics>,
    /// The listener's bound address (the PROXY header's destination).
    pub local: SocketAddr,
    pub counters: ListenerMetrics,
    settings: RwLock<Arc<Settings>>,
}

impl Context {
    pub fn new(
        name: &str,
        pool: Arc<Pool>,
        metrics: Arc<Metrics>,
        local: SocketAddr,
        settings: Settings,
    ) -> Context {
        Context {
            name: name.to_owned(),
            counters: ListenerMetrics::new(&metrics, name),
            pool,
            metrics,
            local,
            settings: RwLock::new(Arc::new(settings)),
        }
    }

    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_settings(&self, settings: Settings) {
        match self.settings.write() {
            Ok(mut s) => *s = Arc::new(settings),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(settings),
        }
    }

    /// Counts an HTTP request answered with `code`.
    pub fn count_request(&self, code: u16) {
        let Some(slot) = usize::from(code)
            .checked_sub(100)
            .and_then(|i| self.counters.codes.get(i))
        else {
            return;
        };
        slot.get_or_init(|| {
            self.metrics
                .requests
                .get_or_create(&[("listener", self.name.clone()), ("code", code.to_string())])
                .clone()
        })
        .inc();
    }
}

/// Counts a client connection as open until dropped.
pub struct Open {
    gauge: Gauge,
}

impl Open {
    pub fn new(ctx: &Context) -> Open {
        ctx.counters.connections.inc();
        let gauge = ctx.counters.active.clone();
        gauge.inc();
        Open { gauge }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// When a connection last moved a byte, for its idle timeout.
pub struct Activity {
    started: tokio::time::Instant,
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            started: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    pub fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once `idle` passed without a `touch` (never with `None`),
    /// while `busy` says the connection may not count as idle (an HTTP
    /// request waiting for its backend).
    pub async fn idle(&self, idle: Option<Duration>, busy: impl Fn() -> bool) {
        let Some(idle) = idle else {
            return std::future::pending().await;
        };
        loop {
            let last = self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if tokio::time::Instant::now() >= deadline {
                if !busy() {
                    return;
                }
                tokio::time::sleep(idle).await;
                continue;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listeners_timeouts_go_over_the_daemons() {
        use ListenerProtocol::*;
        let daemon = Timeouts::default();
        let none = LbTimeouts::default();
        let own = LbTimeouts {
            connect_seconds: Some(1),
            idle_seconds: Some(7),
            client_header_seconds: Some(2),
            response_seconds: Some(4),
            drain_seconds: Some(5),
        };
        let s = Duration::from_secs;
        assert_eq!(daemon.for_listener(Http, &none), daemon);
        let mine = daemon.for_listener(Http, &own);
        assert_eq!(
            (mine.connect, mine.client, mine.response, mine.drain),
            (s(1), s(2), s(4), s(5))
        );
        // (protocol, the listener's own, idle timeout)
        let table = [
            (Tcp, &none, None),
            (Udp, &none, Some(daemon.udp_idle)),
            (Http, &none, Some(daemon.client)),
            (Https, &none, Some(daemon.client)),
            (Tcp, &own, Some(s(7))),
            (Http, &own, Some(s(7))),
        ];
        for (protocol, timeouts, idle) in table {
            assert_eq!(daemon.idle(protocol, timeouts), idle, "{protocol:?}");
        }
        assert_eq!(daemon.for_listener(Udp, &own).udp_idle, s(7));
    }
}
