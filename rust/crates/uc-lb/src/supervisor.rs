//! Keeps the served listeners equal to the desired ones: binds new
//! listeners (and retries those whose port could not be bound, every
//! second, while the others serve), changes backends and settings of
//! running ones in place, and stops those that went away. A stopped
//! listener's or removed backend's open connections drain: they go on
//! until they end or the drain timeout closes them.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;
use uc_types::ListenerProtocol;

use crate::health::{self, Tracker};
use crate::l7;
use crate::l7::backend_tls::BackendTls;
use crate::metrics::{self, Metrics};
use crate::pool::{Backend, Pool};
use crate::proxy::{Context, Settings, Timeouts};
use crate::report::{Entry, Reports};
use crate::spec::{HealthSpec, ListenerSpec, SpecError};
use crate::tls::Tls;
use crate::{tcp, udp, vip};

pub type Desired = BTreeMap<String, Result<ListenerSpec, SpecError>>;

/// Why a listener's socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot bind UDP {address}: {source}")]
    Udp {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind TCP {address}: {source}")]
    Tcp {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// How often a listener that could not be bound is tried again, and TLS
/// files are checked for changes.
const RETRY_EVERY: Duration = Duration::from_secs(1);

struct Running {
    spec: ListenerSpec,
    ctx: Arc<Context>,
    pool: Arc<Pool>,
    tasks: Vec<JoinHandle<()>>,
    probes: HashMap<SocketAddr, JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for probe in self.probes.values() {
            probe.abort();
        }
    }
}

pub struct Supervisor {
    pub metrics: Arc<Metrics>,
    pub reports: Arc<Reports>,
    /// The daemon's (flags); a listener's own go over them.
    pub timeouts: Timeouts,
    running: BTreeMap<String, Running>,
    /// Listeners not serving, with why; retried every second.
    waiting: BTreeMap<String, ListenerSpec>,
}

impl Supervisor {
    pub fn new(metrics: Arc<Metrics>, reports: Arc<Reports>, timeouts: Timeouts) -> Supervisor {
        Supervisor {
            metrics,
            reports,
            timeouts,
            running: BTreeMap::new(),
            waiting: BTreeMap::new(),
        }
    }

    /// Applies every desired state the store sync sends, until it stops.
    pub async fn run(mut self, mut desired: watch::Receiver<Option<Arc<Desired>>>) {
        let mut retry = tokio::time::interval(RETRY_EVERY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = desired.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let next = desired.borrow_and_update().clone();
                    if let Some(next) = next {
                        let span = tracing::info_span!("apply", listeners = next.len());
                        let _entered = span.enter();
                        self.apply(&next);
                        self.metrics.reloads.inc();
                    }
                }
                _ = retry.tick() => {
                    let waiting: Vec<ListenerSpec> = self.waiting.values().cloned().collect();
                    for spec in waiting {
                        self.start(spec, false);
                    }
                }
            }
        }
    }

    pub fn apply(&mut self, desired: &Desired) {
        let gone: Vec<String> = self
            .running
            .keys()
            .chain(self.waiting.keys())
            .filter(|name| !matches!(desired.get(*name), Some(Ok(_))))
            .cloned()
            .collect();
        for name in gone {
            self.stop(&name);
            if !desired.contains_key(&name) {
                tracing::info!(listener = %name, "listener removed");
                self.reports.remove(&name);
                self.metrics.listener_up.remove(&metrics::listener(&name));
            }
        }
        for (name, wanted) in desired {
            match wanted {
                Err(err) => {
                    tracing::error!(listener = %name, %err, "listener cannot be served");
                    self.reports.set(
                        name,
                        Entry {
                            error: Some(err.to_string()),
                            ..Entry::default()
                        },
                    );
                    self.metrics
                        .listener_up
                        .get_or_create(&metrics::listener(name))
                        .set(0);
                }
                Ok(spec) => match self.running.get(name).map(|r| r.spec.rebind_needed(spec)) {
                    Some(false) => self.update(spec),
                    Some(true) => {
                        self.stop(name);
                        self.start(spec.clone(), true);
                    }
                    None => {
                        if self.waiting.get(name) != Some(spec) {
                            self.start(spec.clone(), true);
                        }
                    }
                },
            }
        }
    }

    /// Binds and starts `spec`; on failure it waits for the next retry.
    fn start(&mut self, spec: ListenerSpec, first: bool) {
        let name = spec.name.clone();
        let span =
            tracing::info_span!(parent: None, "listener", listener = %name, address = %spec.bind);
        let _entered = span.enter();
        let pool = Arc::new(Pool::new(&name, spec.policy, self.metrics.clone()));
        let ctx = Arc::new(Context::new(
            &name,
            pool.clone(),
            self.metrics.clone(),
            spec.bind,
            self.settings(&spec),
        ));
        let tasks = match self.bind(&spec, ctx.clone()) {
            Ok(tasks) => tasks,
            Err(err) => {
                if first || self.waiting.get(&name) != Some(&spec) {
                    tracing::error!(%err, "listener cannot serve; retrying every second");
                }
                self.reports.set(
                    &name,
                    Entry {
                        protocol: Some(spec.protocol),
                        address: Some(spec.bind),
                        error: Some(err.to_string()),
                        pool: None,
                    },
                );
                self.metrics
                    .listener_up
                    .get_or_create(&metrics::listener(&name))
                    .set(0);
                self.waiting.insert(name, spec);
                return;
            }
        };
        if self.waiting.remove(&name).is_some() {
            tracing::info!("listener bound after all");
        }
        tracing::info!(protocol = ?spec.protocol, backends = spec.backends.len(), "listener serving");
        let mut running = Running {
            spec: spec.clone(),
            ctx,
            pool: pool.clone(),
            tasks,
            probes: HashMap::new(),
        };
        let (added, _) = pool.update(&spec.groups(), spec.policy);
        for backend in added {
            self.probe(&mut running, backend);
        }
        self.reports.set(
            &name,
            Entry {
                protocol: Some(spec.protocol),
                address: Some(spec.bind),
                error: None,
                pool: Some(pool),
            },
        );
        self.metrics
            .listener_up
            .get_or_create(&metrics::listener(&name))
            .set(1);
        self.running.insert(name, running);
    }

    /// The listener's socket and the tasks serving it.
    fn bind(
        &self,
        spec: &ListenerSpec,
        ctx: Arc<Context>,
    ) -> Result<Vec<JoinHandle<()>>, BindError> {
        let span = tracing::Span::current();
        match spec.protocol {
            ListenerProtocol::Udp => {
                let socket = vip::bind_udp(spec.bind).map_err(|source| BindError::Udp {
                    address: spec.bind,
                    source,
                })?;
                Ok(vec![tokio::spawn(udp::serve(socket, ctx).instrument(span))])
            }
            protocol => {
                let listener = vip::bind_tcp(spec.bind).map_err(|source| BindError::Tcp {
                    address: spec.bind,
                    source,
                })?;
                if protocol == ListenerProtocol::Tcp {
                    return Ok(vec![tokio::spawn(
                        tcp::serve(listener, ctx).instrument(span),
                    )]);
                }
                let tls = match &spec.tls {
                    Some(files) => Some(Arc::new(Tls::load(files)?)),
                    None => None,
                };
                let mut tasks = vec![tokio::spawn(
                    l7::serve(listener, ctx.clone(), tls.clone()).instrument(span.clone()),
                )];
                if let Some(tls) = tls {
                    tasks.push(tokio::spawn(
                        reload_tls(tls, ctx.name.clone()).instrument(span),
                    ));
                }
                Ok(tasks)
            }
        }
    }

    /// New backends, balance or health settings, in place.
    fn update(&mut self, spec: &ListenerSpec) {
        let Some(mut running) = self.running.remove(&spec.name) else {
            return;
        };
        if running.spec == *spec {
            self.running.insert(spec.name.clone(), running);
            return;
        }
        let span = tracing::info_span!(parent: None, "listener", listener = %spec.name);
        let _entered = span.enter();
        let (added, removed) = running.pool.update(&spec.groups(), spec.policy);
        if (running.spec.timeouts.clone(), running.spec.proxy_protocol)
            != (spec.timeouts.clone(), spec.proxy_protocol)
        {
            running.ctx.set_settings(self.settings(spec));
        }
        tracing::info!(
            added = added.len(),
            removed = removed.len(),
            "listener changed in place"
        );
        for backend in &removed {
            if let Some(probe) = running.probes.remove(&backend.addr) {
                probe.abort();
            }
            self.drain(&running.pool, backend.clone(), self.drain_timeout(spec));
        }
        let health_changed = running.spec.health != spec.health;
        running.spec = spec.clone();
        if health_changed {
            for (_, probe) in running.probes.drain() {
                probe.abort();
            }
            for backend in running.pool.backends() {
                self.probe(&mut running, backend);
            }
        } else {
            for backend in added {
                self.probe(&mut running, backend);
            }
        }
        self.reports.changed();
        self.running.insert(spec.name.clone(), running);
    }

    fn stop(&mut self, name: &str) {
        self.waiting.remove(name);
        if let Some(running) = self.running.remove(name) {
            tracing::info!(listener = %name, "listener stopped; open connections drain");
            let timeout = self.drain_timeout(&running.spec);
            for backend in running.pool.drain_all() {
                self.drain(&running.pool, backend, timeout);
            }
        }
    }

    /// What `spec`'s connections read: its timeouts over the daemon's.
    fn settings(&self, spec: &ListenerSpec) -> Settings {
        let timeouts = self.timeouts.for_listener(spec.protocol, &spec.timeouts);
        let idle = self.timeouts.idle(spec.protocol, &spec.timeouts);
        let backend_tls = spec
            .backend_tls
            .as_ref()
            .map(|tls| Arc::new(BackendTls::load(tls)));
        Settings::new(timeouts, idle, spec.proxy_protocol, backend_tls)
    }

    fn drain_timeout(&self, spec: &ListenerSpec) -> Duration {
        self.timeouts
            .for_listener(spec.protocol, &spec.timeouts)
            .drain
    }

    fn probe(&self, running: &mut Running, backend: Arc<Backend>) {
        let span =
            tracing::info_span!("probe", listener = %running.spec.name, backend = %backend.addr);
        let task = probe_loop(
            running.pool.clone(),
            backend.clone(),
            running.spec.health.clone(),
            running.ctx.settings().backend_tls.clone(),
            self.reports.clone(),
        );
        running
            .probes
            .insert(backend.addr, tokio::spawn(task.instrument(span)));
    }

    /// Closes `backend`'s connections once they are done or the drain
    /// timeout is over, whichever comes first.
    fn drain(&self, pool: &Arc<Pool>, backend: Arc<Backend>, timeout: Duration) {
        let (pool, reports) = (pool.clone(), self.reports.clone());
        let span = tracing::info_span!(parent: None, "drain", listener = %pool.listener, backend = %backend.addr);
        tokio::spawn(
            async move {
                let deadline = tokio::time::Instant::now() + timeout;
                while backend.active() > 0 && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if backend.active() > 0 {
                    tracing::info!(
                        open = backend.active(),
                        ?timeout,
                        "drain timeout: closing open connections"
                    );
                } else {
                    tracing::info!("drained");
                }
                pool.drained(&backend);
                reports.changed();
            }
            .instrument(span),
        );
        self.reports.changed();
    }
}

async fn probe_loop(
    pool: Arc<Pool>,
    backend: Arc<Backend>,
    health: HealthSpec,
    tls: Option<Arc<BackendTls>>,
    reports: Arc<Reports>,
) {
    let mut tracker = Tracker::resume(backend.state(), health.rise, health.fall);
    let mut tick = tokio::time::interval(health.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result =
            health::probe(&health.probe, backend.addr, health.timeout, tls.as_deref()).await;
        if let Err(err) = &result {
            tracing::debug!(%err, "probe failed");
        }
        if let Some(state) = tracker.observe(result.is_ok()) {
            match &result {
                Ok(()) => tracing::info!(?state, "backend state changed"),
                Err(err) => tracing::warn!(?state, %err, "backend state changed"),
            }
            pool.set_state(&backend, state);
            reports.changed();
        }
    }
}

async fn reload_tls(tls: Arc<Tls>, listener: String) {
    let mut tick = tokio::time::interval(RETRY_EVERY);
    loop {
        tick.tick().await;
        match tls.reload_if_changed() {
            Ok(true) => tracing::info!(%listener, "TLS certificate reloaded"),
            Ok(false) => {}
            Err(err) => {
                tracing::error!(%listener, %err, "TLS files changed but cannot be used; keeping the previous certificate")
            }
        }
    }
}
