//! A listener's backends as they are now: which are in rotation (probes
//! pass, not draining, weight above 0) in each group (the default, and one
//! per L7 route), their open connections, and the choice of one for a new
//! connection (`balance::choose`). Shared by the listener's accept loop,
//! its probes and the reports; changed in place when the store changes, so
//! open connections keep their backend. A backend in several groups is one
//! backend: probed once, counted once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;
use uc_daemon::metrics::prometheus_client::metrics::histogram::Histogram;
use uc_daemon::metrics::{Counter, Gauge};

use crate::balance::{self, Load, Policy, Tables};
use crate::health::State;
use crate::maglev::{self, Maglev};
use crate::metrics::{self, Metrics};
use crate::spec::{Group, Matcher};

/// A backend's metrics, looked up once when it joins (not per connection).
#[derive(Debug)]
pub struct BackendMetrics {
    pub up: Gauge,
    pub active: Gauge,
    pub selected: Counter,
    pub failures: Counter,
    pub latency: Histogram,
    /// Bytes client to backend (`in`) and back (`out`).
    pub bytes_in: Counter,
    pub bytes_out: Counter,
}

impl BackendMetrics {
    fn new(metrics: &Metrics, listener: &str, addr: SocketAddr) -> BackendMetrics {
        // One lookup per statement: a family's guard lives to the end of
        // its statement, and a second lookup in the same family would wait
        // for it.
        let labels = metrics::backend(listener, addr);
        let up = metrics.backend_up.get_or_create(&labels).clone();
        let active = metrics.backend_active.get_or_create(&labels).clone();
        let selected = metrics.backend_selected.get_or_create(&labels).clone();
        let failures = metrics.backend_failures.get_or_create(&labels).clone();
        let latency = metrics.backend_latency.get_or_create(&labels).clone();
        let bytes = |direction| {
            metrics
                .bytes
                .get_or_create(&metrics::bytes(listener, addr, direction))
                .clone()
        };
        let bytes_in = bytes("in");
        let bytes_out = bytes("out");
        BackendMetrics {
            up,
            active,
            selected,
            failures,
            latency,
            bytes_in,
            bytes_out,
        }
    }
}

#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    /// `addr` as a request URI's authority (HTTP), made once.
    pub authority: hyper::http::uri::Authority,
    pub metrics: BackendMetrics,
    state: Mutex<State>,
    draining: AtomicBool,
    active: AtomicU64,
    /// Set to true when open connections must end (drain timeout).
    closing: watch::Sender<bool>,
}

impl Backend {
    fn new(addr: SocketAddr, metrics: BackendMetrics) -> Backend {
        Backend {
            addr,
            authority: hyper::http::uri::Authority::try_from(addr.to_string().as_str())
                .unwrap_or_else(|_| hyper::http::uri::Authority::from_static("invalid")),
            metrics,
            state: Mutex::new(State::Unknown),
            draining: AtomicBool::new(false),
            active: AtomicU64::new(0),
            closing: watch::channel(false).0,
        }
    }

    pub fn state(&self) -> State {
        match self.state.lock() {
            Ok(state) => *state,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    fn in_rotation(&self) -> bool {
        self.state() == State::Up && !self.draining()
    }

    /// Bytes copied between a client and this backend.
    pub fn count_bytes(&self, inbound: u64, outbound: u64) {
        self.metrics.bytes_in.inc_by(inbound);
        self.metrics.bytes_out.inc_by(outbound);
    }

    /// Ends every open connection to this backend now.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once `close` was called.
    pub async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        let _ = rx.wait_for(|closing| *closing).await;
    }
}

/// A connection (or request) counted against its backend until dropped.
pub struct Lease {
    pub backend: Arc<Backend>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.backend.active.fetch_sub(1, Ordering::Relaxed);
        self.backend.metrics.active.dec();
    }
}

/// One group's backends in rotation and what choosing among them needs.
#[derive(Default)]
struct Rotation {
    matcher: Option<Matcher>,
    /// The group as declared: every backend with its weight.
    declared: Vec<(Arc<Backend>, u32)>,
    backends: Vec<Arc<Backend>>,
    weights: Vec<u32>,
    schedule: Vec<usize>,
    maglev: Option<Maglev>,
}

impl Rotation {
    fn build(
        matcher: Option<Matcher>,
        declared: Vec<(Arc<Backend>, u32)>,
        policy: Policy,
    ) -> Rotation {
        let (backends, weights): (Vec<Arc<Backend>>, Vec<u32>) = declared
            .iter()
            .filter(|(b, w)| *w > 0 && b.in_rotation())
            .map(|(b, w)| (b.clone(), *w))
            .unzip();
        let schedule = match policy {
            Policy::RoundRobin => balance::schedule(&weights),
            _ => Vec::new(),
        };
        let maglev = (policy == Policy::Maglev).then(|| {
            let names: Vec<String> = backends.iter().map(|b| b.addr.to_string()).collect();
            let weighted: Vec<(&str, u32)> = names
                .iter()
                .map(String::as_str)
                .zip(weights.iter().copied())
                .collect();
            Maglev::new(&weighted)
        });
        Rotation {
            matcher,
            declared,
            backends,
            weights,
            schedule,
            maglev,
        }
    }
}

#[derive(Default)]
struct Members {
    all: Vec<Arc<Backend>>,
    /// The default group first, then one per route.
    groups: Vec<Rotation>,
}

pub struct Pool {
    pub listener: String,
    /// Removed backends whose connections are still open.
    draining: Mutex<Vec<Arc<Backend>>>,
    policy: Mutex<Policy>,
    members: RwLock<Arc<Members>>,
    /// Held from reading the members to publishing the rebuilt ones, so two
    /// probes finishing at once cannot publish out of order: the later
    /// rebuild would otherwise be overwritten by one that read a backend's
    /// state before its change, leaving it out of rotation while reported up.
    rebuilding: Mutex<()>,
    counter: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Pool {
    pub fn new(listener: &str, policy: Policy, metrics: Arc<Metrics>) -> Pool {
        Pool {
            listener: listener.to_owned(),
            policy: Mutex::new(policy),
            draining: Mutex::new(Vec::new()),
            members: RwLock::new(Arc::new(Members::default())),
            rebuilding: Mutex::new(()),
            counter: AtomicU64::new(0),
            metrics,
        }
    }

    fn members(&self) -> Arc<Members> {
        match self.members.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn policy(&self) -> Policy {
        match self.policy.lock() {
            Ok(p) => *p,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Every current backend (not those drained away).
    pub fn backends(&self) -> Vec<Arc<Backend>> {
        self.members().all.clone()
    }

    /// Backends in rotation in the default group.
    pub fn in_rotation(&self) -> usize {
        self.members()
            .groups
            .first()
            .map_or(0, |g| g.backends.len())
    }

    /// The group of a request for `host` and `path`: the first route that
    /// matches, else the default (0).
    pub fn route(&self, host: Option<&str>, path: &str) -> usize {
        let members = self.members();
        members
            .groups
            .iter()
            .position(|g| g.matcher.as_ref().is_some_and(|m| m.matches(host, path)))
            .unwrap_or(0)
    }

    /// A backend of `group` for a new connection from a client whose
    /// address hashes to `flow`, none of `tried`; counted until the lease is
    /// dropped.
    pub fn pick(&self, group: usize, flow: u64, tried: &[SocketAddr]) -> Option<Lease> {
        let members = self.members();
        let rotation = members.groups.get(group)?;
        let skip: Vec<usize> = if tried.is_empty() {
            Vec::new()
        } else {
            rotation
                .backends
                .iter()
                .enumerate()
                .filter(|(_, b)| tried.contains(&b.addr))
                .map(|(i, _)| i)
                .collect()
        };
        let load = |i: usize| Load {
            active: rotation.backends[i].active(),
            weight: rotation.weights[i],
        };
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        let tables = Tables {
            schedule: &rotation.schedule,
            maglev: rotation.maglev.as_ref(),
        };
        let n = rotation.backends.len();
        let index = balance::choose(self.policy(), n, load, counter, flow, &tables, &skip)?;
        let backend = rotation.backends.get(index)?.clone();
        backend.active.fetch_add(1, Ordering::Relaxed);
        backend.metrics.active.inc();
        backend.metrics.selected.inc();
        Some(Lease { backend })
    }

    /// Takes the listener's new groups and policy: backends kept keep their
    /// state and connections; new ones start `Unknown` (out of rotation
    /// until probed); the removed ones are given back, draining.
    pub fn update(
        &self,
        groups: &[Group],
        policy: Policy,
    ) -> (Vec<Arc<Backend>>, Vec<Arc<Backend>>) {
        match self.policy.lock() {
            Ok(mut p) => *p = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
        let _rebuilding = self.lock_rebuilding();
        let current = self.members();
        let mut all: Vec<Arc<Backend>> = Vec::new();
        let mut added = Vec::new();
        for addr in groups.iter().flat_map(|g| &g.backends) {
            if all.iter().any(|b| b.addr == *addr) {
                continue;
            }
            match current.all.iter().find(|b| b.addr == *addr) {
                Some(kept) => all.push(kept.clone()),
                None => {
                    let metrics = BackendMetrics::new(&self.metrics, &self.listener, *addr);
                    let backend = Arc::new(Backend::new(*addr, metrics));
                    added.push(backend.clone());
                    all.push(backend);
                }
            }
        }
        let removed: Vec<Arc<Backend>> = current
            .all
            .iter()
            .filter(|b| !all.iter().any(|kept| kept.addr == b.addr))
            .cloned()
            .collect();
        self.lock_draining().extend(removed.iter().cloned());
        for backend in &removed {
            backend.draining.store(true, Ordering::Relaxed);
            self.metrics
                .backend_up
                .remove(&metrics::backend(&self.listener, backend.addr));
        }
        let declared = groups
            .iter()
            .map(|g| {
                let members = g
                    .backends
                    .iter()
                    .filter_map(|addr| all.iter().find(|b| b.addr == *addr))
                    .map(|b| (b.clone(), g.weight(&b.addr)))
                    .collect();
                (g.matcher.clone(), members)
            })
            .collect();
        self.publish(all, declared);
        (added, removed)
    }

    fn lock_rebuilding(&self) -> std::sync::MutexGuard<'_, ()> {
        match self.rebuilding.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn lock_draining(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Backend>>> {
        match self.draining.lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Removed backends whose connections are still open.
    pub fn draining(&self) -> Vec<Arc<Backend>> {
        self.lock_draining().clone()
    }

    /// A drained backend is done: its connections ended or were closed.
    pub fn drained(&self, backend: &Arc<Backend>) {
        backend.close();
        self.lock_draining().retain(|b| !Arc::ptr_eq(b, backend));
    }

    /// Drains every backend (the listener is going away).
    pub fn drain_all(&self) -> Vec<Arc<Backend>> {
        let (_, removed) = self.update(&[], self.policy());
        removed
    }

    /// A probe changed `backend`'s state.
    pub fn set_state(&self, backend: &Backend, state: State) {
        match backend.state.lock() {
            Ok(mut s) => *s = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
        let _rebuilding = self.lock_rebuilding();
        let current = self.members();
        let declared = current
            .groups
            .iter()
            .map(|g| (g.matcher.clone(), g.declared.clone()))
            .collect();
        self.publish(current.all.clone(), declared);
    }

    #[allow(clippy::type_complexity)]
    fn publish(
        &self,
        all: Vec<Arc<Backend>>,
        declared: Vec<(Option<Matcher>, Vec<(Arc<Backend>, u32)>)>,
    ) {
        let policy = self.policy();
        let groups = declared
            .into_iter()
            .map(|(matcher, members)| Rotation::build(matcher, members, policy))
            .collect();
        for backend in &all {
            backend.metrics.up.set(i64::from(backend.in_rotation()));
        }
        let members = Arc::new(Members { all, groups });
        match self.members.write() {
            Ok(mut m) => *m = members,
            Err(poisoned) => *poisoned.into_inner() = members,
        }
    }
}

/// The flow hash of a client (its address without the port, so one
/// client's connections stick together under Maglev).
pub fn flow_hash(client: SocketAddr) -> u64 {
    match client.ip() {
        std::net::IpAddr::V4(v4) => maglev::hash(&v4.octets(), 0),
        std::net::IpAddr::V6(v6) => maglev::hash(&v6.octets(), 0),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    /// One default group of `list`, weight 1 each.
    fn one(list: &[&str]) -> Vec<Group> {
        vec![Group {
            matcher: None,
            backends: addrs(list),
            weights: Default::default(),
        }]
    }

    #[test]
    fn rotation_follows_health_and_membership() {
        let pool = Pool::new("web", Policy::RoundRobin, Arc::new(Metrics::new()));
        let (added, removed) =
            pool.update(&one(&["127.0.0.1:1", "127.0.0.1:2"]), Policy::RoundRobin);
        assert_eq!((added.len(), removed.len()), (2, 0));
        // Unknown backends are not used.
        assert!(pool.pick(0, 0, &[]).is_none());
        pool.set_state(&added[0], State::Up);
        pool.set_state(&added[1], State::Up);
        let first = pool.pick(0, 0, &[]).unwrap();
        let second = pool.pick(0, 0, &[]).unwrap();
        assert_ne!(first.backend.addr, second.backend.addr);
        assert_eq!(first.backend.active(), 1);
        // Kept backends keep their state and connections; removed ones drain.
        let (added2, removed2) = pool.update(
            &one(&["127.0.0.1:2", "127.0.0.1:3"]),
            Policy::LeastConnections,
        );
        assert_eq!(added2.len(), 1);
        assert_eq!(removed2[0].addr, "127.0.0.1:1".parse().unwrap());
        assert!(removed2[0].draining());
        assert_eq!(pool.in_rotation(), 1);
        for _ in 0..3 {
            let lease = pool.pick(0, 0, &[]).unwrap();
            assert_eq!(lease.backend.addr, "127.0.0.1:2".parse().unwrap());
        }
        // Tried backends are skipped.
        assert!(pool.pick(0, 0, &addrs(&["127.0.0.1:2"])).is_none());
        assert_eq!(removed2[0].active(), 1);
        drop((first, second));
        assert_eq!(removed2[0].active(), 0);
        pool.set_state(&added[1], State::Down);
        assert_eq!(pool.in_rotation(), 0);
    }

    #[test]
    fn probes_finishing_at_once_leave_every_up_backend_in_rotation() {
        // Each backend's probe reports Up from its own thread at the same
        // moment; whatever order the rebuilds run in, the last one published
        // must have read every state. Maglev makes each rebuild long (a
        // table per rebuild), which widens the window a race needs: without
        // the rebuild lock this failed on every run (14 or 15 of 16 in
        // rotation).
        let list: Vec<String> = (1..=16).map(|i| format!("127.0.0.1:{i}")).collect();
        let list: Vec<&str> = list.iter().map(String::as_str).collect();
        for _ in 0..10 {
            let pool = Arc::new(Pool::new("web", Policy::Maglev, Arc::new(Metrics::new())));
            let (added, _) = pool.update(&one(&list), Policy::Maglev);
            let start = Arc::new(std::sync::Barrier::new(added.len()));
            let probes: Vec<_> = added
                .into_iter()
                .map(|backend| {
                    let (pool, start) = (pool.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        pool.set_state(&backend, State::Up);
                    })
                })
                .collect();
            for probe in probes {
                probe.join().unwrap();
            }
            assert_eq!(pool.in_rotation(), list.len());
        }
    }

    #[test]
    fn routes_choose_their_group_and_share_backends() {
        let pool = Pool::new("web", Policy::RoundRobin, Arc::new(Metrics::new()));
        let api = Matcher {
            host: Some("api.test".into()),
            path_prefix: "/".into(),
        };
        let groups = vec![
            one(&["127.0.0.1:1", "127.0.0.1:2"]).remove(0),
            Group {
                matcher: Some(api),
                backends: addrs(&["127.0.0.1:2", "127.0.0.1:3"]),
                weights: [("127.0.0.1:3".parse().unwrap(), 0)].into(),
            },
        ];
        let (added, _) = pool.update(&groups, Policy::RoundRobin);
        // The shared backend is one backend (probed and counted once).
        assert_eq!(added.len(), 3);
        for backend in &added {
            pool.set_state(backend, State::Up);
        }
        assert_eq!(pool.route(Some("API.test:80"), "/x"), 1);
        assert_eq!(pool.route(Some("www.test"), "/x"), 0);
        assert_eq!(pool.route(None, "/x"), 0);
        // Weight 0 takes no traffic: only :2 in the route's group.
        for _ in 0..4 {
            let lease = pool.pick(1, 0, &[]).unwrap();
            assert_eq!(lease.backend.addr, "127.0.0.1:2".parse().unwrap());
        }
        assert!(pool.pick(2, 0, &[]).is_none());
    }
}
