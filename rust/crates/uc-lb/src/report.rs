//! What uc-lb serves now, for /health and the store status keys: per
//! listener its address, whether it serves or why not, and its backends'
//! states. The supervisor writes entries; probes and drains say when
//! something changed (`changed`), so the status writer rewrites.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uc_types::{LbBackendState, LbBackendStatus, LbListenerStatus, LbVipStatus};

use crate::health::State;
use crate::pool::Pool;

#[derive(Clone, Default)]
pub struct Entry {
    pub protocol: Option<uc_types::ListenerProtocol>,
    pub address: Option<SocketAddr>,
    /// Why the listener does not serve (spec, bind or TLS problem).
    pub error: Option<String>,
    pub pool: Option<Arc<Pool>>,
}

#[derive(Default)]
pub struct Reports {
    entries: Mutex<BTreeMap<String, Entry>>,
    changed: Notify,
    /// The VIPs' holders, written by `vip`'s campaigns.
    pub vips: Arc<crate::vip::Board>,
}

impl Reports {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        match self.entries.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn set(&self, name: &str, entry: Entry) {
        self.lock().insert(name.to_owned(), entry);
        self.changed();
    }

    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
        self.changed();
    }

    /// Something a report shows changed (a backend's state, a drain).
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    pub async fn wait_changed(&self) {
        self.changed.notified().await;
    }

    pub fn statuses(&self, node: &str) -> BTreeMap<String, LbListenerStatus> {
        self.lock()
            .iter()
            .map(|(name, entry)| {
                let vip = entry.address.and_then(|a| self.vips.get(a.ip()));
                (name.clone(), status(node, name, entry, vip))
            })
            .collect()
    }
}

fn status(node: &str, name: &str, entry: &Entry, vip: Option<LbVipStatus>) -> LbListenerStatus {
    let mut backends = Vec::new();
    if let Some(pool) = &entry.pool {
        for backend in pool.backends() {
            let state = match backend.state() {
                State::Up => LbBackendState::Up,
                State::Down => LbBackendState::Down,
                State::Unknown => LbBackendState::Unknown,
            };
            backends.push(LbBackendStatus {
                address: backend.addr,
                state,
                connections: None,
            });
        }
        for backend in pool.draining() {
            backends.push(LbBackendStatus {
                address: backend.addr,
                state: LbBackendState::Draining,
                connections: Some(backend.active()),
            });
        }
    }
    LbListenerStatus {
        node: node.to_owned(),
        listener: name.to_owned(),
        protocol: entry.protocol,
        address: entry.address,
        serving: entry.error.is_none() && entry.pool.is_some(),
        // A VIP this node cannot bring up is this node's failure too.
        error: entry.error.clone().or_else(|| {
            let err = vip.as_ref()?.error.as_ref()?;
            Some(format!("VIP: {err}"))
        }),
        backends,
        vip,
    }
}
