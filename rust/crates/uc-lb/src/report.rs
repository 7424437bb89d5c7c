//! What uc-lb serves now, for /health and the store status keys: per
//! listener its address, whether it serves or why not, and its backends'
//! states. The supervisor writes entries; probes and drains say when
//! something changed (`changed`), so the status writer rewrites.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::Notify;

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

/// `/uc/v1/lb/status/<node>/<listener>`: one uc-lb's view of one
/// listener, written by that uc-lb only (on its lease: it disappears when
/// the uc-lb does).
// TODO(issue 16, point 3): move to uc-types when `uc` and the dashboard read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub node: String,
    pub listener: String,
    pub protocol: Option<uc_types::ListenerProtocol>,
    pub address: Option<SocketAddr>,
    /// Bound and accepting.
    pub serving: bool,
    pub error: Option<String>,
    pub backends: Vec<BackendStatus>,
    /// Who holds the listener's address, when it is a VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<crate::vip::VipStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendStatus {
    pub address: SocketAddr,
    /// `up` (in rotation), `down`, `unknown` (not probed yet) or `draining`
    /// (removed; its open connections are finishing).
    pub state: String,
    /// Open connections, while draining: what a rollout waits for (an
    /// in-rotation count changes per request; it is in /metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
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

    pub fn statuses(&self, node: &str) -> BTreeMap<String, ListenerStatus> {
        self.lock()
            .iter()
            .map(|(name, entry)| {
                let vip = entry.address.and_then(|a| self.vips.get(a.ip()));
                (name.clone(), status(node, name, entry, vip))
            })
            .collect()
    }
}

fn status(
    node: &str,
    name: &str,
    entry: &Entry,
    vip: Option<crate::vip::VipStatus>,
) -> ListenerStatus {
    let mut backends = Vec::new();
    if let Some(pool) = &entry.pool {
        for backend in pool.backends() {
            let state = match backend.state() {
                State::Up => "up",
                State::Down => "down",
                State::Unknown => "unknown",
            };
            backends.push(BackendStatus {
                address: backend.addr,
                state: state.to_owned(),
                connections: None,
            });
        }
        for backend in pool.draining() {
            backends.push(BackendStatus {
                address: backend.addr,
                state: "draining".to_owned(),
                connections: Some(backend.active()),
            });
        }
    }
    ListenerStatus {
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
