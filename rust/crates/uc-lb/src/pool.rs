//! A listener's backends as they are now: which are in rotation (probes
//! pass, not draining), their open connections, and the choice of one for
//! a new connection (`balance::choose`). Shared by the listener's accept
//! loop, its probes and the reports; changed in place when the store
//! changes, so open connections keep their backend.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

use crate::balance::{self, Load, Policy};
use crate::health::State;
use crate::maglev::{self, Maglev};
use crate::metrics::{self, Metrics};

#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    state: Mutex<State>,
    draining: AtomicBool,
    active: AtomicU64,
    /// Set to true when open connections must end (drain timeout).
    closing: watch::Sender<bool>,
}

impl Backend {
    fn new(addr: SocketAddr, state: State) -> Backend {
        Backend {
            addr,
            state: Mutex::new(state),
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
    metrics: Arc<Metrics>,
    listener: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.backend.active.fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .backend_active
            .get_or_create(&metrics::backend(&self.listener, self.backend.addr))
            .dec();
    }
}

#[derive(Default)]
struct Members {
    all: Vec<Arc<Backend>>,
    rotation: Vec<Arc<Backend>>,
    maglev: Option<Maglev>,
}

pub struct Pool {
    pub listener: String,
    /// Removed backends whose connections are still open.
    draining: Mutex<Vec<Arc<Backend>>>,
    policy: Mutex<Policy>,
    members: RwLock<Arc<Members>>,
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

    pub fn in_rotation(&self) -> usize {
        self.members().rotation.len()
    }

    /// A backend for a new connection from a client whose address hashes to
    /// `flow`, none of `tried`; counted until the lease is dropped.
    pub fn pick(&self, flow: u64, tried: &[SocketAddr]) -> Option<Lease> {
        let members = self.members();
        let skip: Vec<usize> = members
            .rotation
            .iter()
            .enumerate()
            .filter(|(_, b)| tried.contains(&b.addr))
            .map(|(i, _)| i)
            .collect();
        let loads: Vec<Load> = members
            .rotation
            .iter()
            .map(|b| Load { active: b.active() })
            .collect();
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        let index = balance::choose(
            self.policy(),
            &loads,
            counter,
            flow,
            members.maglev.as_ref(),
            &skip,
        )?;
        let backend = members.rotation.get(index)?.clone();
        backend.active.fetch_add(1, Ordering::Relaxed);
        let labels = metrics::backend(&self.listener, backend.addr);
        self.metrics.backend_active.get_or_create(&labels).inc();
        self.metrics.backend_selected.get_or_create(&labels).inc();
        Some(Lease {
            backend,
            metrics: self.metrics.clone(),
            listener: self.listener.clone(),
        })
    }

    /// Takes the listener's new backends and policy: backends kept keep
    /// their state and connections; new ones start `Unknown` (out of
    /// rotation until probed); the removed ones are given back, draining.
    pub fn update(
        &self,
        addrs: &[SocketAddr],
        policy: Policy,
    ) -> (Vec<Arc<Backend>>, Vec<Arc<Backend>>) {
        match self.policy.lock() {
            Ok(mut p) => *p = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
        let current = self.members();
        let mut all = Vec::new();
        let mut added = Vec::new();
        for addr in addrs {
            match current.all.iter().find(|b| b.addr == *addr) {
                Some(kept) => all.push(kept.clone()),
                None => {
                    let backend = Arc::new(Backend::new(*addr, State::Unknown));
                    added.push(backend.clone());
                    all.push(backend);
                }
            }
        }
        let removed: Vec<Arc<Backend>> = current
            .all
            .iter()
            .filter(|b| !addrs.contains(&b.addr))
            .cloned()
            .collect();
        self.lock_draining().extend(removed.iter().cloned());
        for backend in &removed {
            backend.draining.store(true, Ordering::Relaxed);
            self.metrics
                .backend_up
                .remove(&metrics::backend(&self.listener, backend.addr));
        }
        self.publish(all);
        (added, removed)
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
        let all = self.members().all.clone();
        self.publish(all);
    }

    fn publish(&self, all: Vec<Arc<Backend>>) {
        let rotation: Vec<Arc<Backend>> = all.iter().filter(|b| b.in_rotation()).cloned().collect();
        let names: Vec<String> = rotation.iter().map(|b| b.addr.to_string()).collect();
        let weighted: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let maglev = (self.policy() == Policy::Maglev).then(|| Maglev::new(&weighted));
        for backend in &all {
            let up = i64::from(backend.in_rotation());
            self.metrics
                .backend_up
                .get_or_create(&metrics::backend(&self.listener, backend.addr))
                .set(up);
        }
        let members = Arc::new(Members {
            all,
            rotation,
            maglev,
        });
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

    #[test]
    fn rotation_follows_health_and_membership() {
        let pool = Pool::new("web", Policy::RoundRobin, Arc::new(Metrics::new()));
        let (added, removed) =
            pool.update(&addrs(&["127.0.0.1:1", "127.0.0.1:2"]), Policy::RoundRobin);
        assert_eq!((added.len(), removed.len()), (2, 0));
        // Unknown backends are not used.
        assert!(pool.pick(0, &[]).is_none());
        pool.set_state(&added[0], State::Up);
        pool.set_state(&added[1], State::Up);
        let first = pool.pick(0, &[]).unwrap();
        let second = pool.pick(0, &[]).unwrap();
        assert_ne!(first.backend.addr, second.backend.addr);
        assert_eq!(first.backend.active(), 1);
        // Kept backends keep their state and connections; removed ones drain.
        let (added2, removed2) = pool.update(
            &addrs(&["127.0.0.1:2", "127.0.0.1:3"]),
            Policy::LeastConnections,
        );
        assert_eq!(added2.len(), 1);
        assert_eq!(removed2[0].addr, "127.0.0.1:1".parse().unwrap());
        assert!(removed2[0].draining());
        assert_eq!(pool.in_rotation(), 1);
        for _ in 0..3 {
            let lease = pool.pick(0, &[]).unwrap();
            assert_eq!(lease.backend.addr, "127.0.0.1:2".parse().unwrap());
        }
        // Tried backends are skipped.
        assert!(pool.pick(0, &addrs(&["127.0.0.1:2"])).is_none());
        assert_eq!(removed2[0].active(), 1);
        drop((first, second));
        assert_eq!(removed2[0].active(), 0);
        pool.set_state(&added[1], State::Down);
        assert_eq!(pool.in_rotation(), 0);
    }
}
