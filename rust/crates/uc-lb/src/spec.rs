//! What uc-lb serves, resolved: one `ListenerSpec` per listener, with its
//! address to bind and its backends as socket addresses. Built by
//! `store::StoreState::desired` from the declared listener and the
//! cluster's state; compared by value to decide what a change touches.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use uc_types::ListenerProtocol;

use crate::balance::Policy;
use crate::health::Probe;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    pub protocol: ListenerProtocol,
    pub bind: SocketAddr,
    pub policy: Policy,
    /// Sorted, without duplicates.
    pub backends: Vec<SocketAddr>,
    pub health: HealthSpec,
    /// Certificate chain and key files (`https` only).
    pub tls: Option<TlsFiles>,
    /// Send a PROXY protocol v2 header to backends (TCP, UDP). The schema
    /// has no field for it yet, so it is always off from the store.
    pub proxy_protocol: bool,
    /// The XDP fast path for this listener's address (src/xdp).
    pub xdp: uc_types::ListenerXdp,
}

impl ListenerSpec {
    /// Whether a change to `other` needs a new socket (else the running
    /// listener takes the new backends and settings in place).
    pub fn rebind_needed(&self, other: &ListenerSpec) -> bool {
        self.protocol != other.protocol || self.bind != other.bind || self.tls != other.tls
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl From<&uc_types::LbHealthCheck> for HealthSpec {
    fn from(check: &uc_types::LbHealthCheck) -> HealthSpec {
        HealthSpec {
            probe: match check.kind {
                uc_types::LbHealthCheckType::Tcp => Probe::Tcp,
                uc_types::LbHealthCheckType::Http => Probe::Http {
                    path: check.path.clone(),
                },
            },
            interval: Duration::from_secs(u64::from(check.interval_seconds.max(1))),
            timeout: Duration::from_secs(u64::from(check.timeout_seconds.max(1))),
            rise: check.rise,
            fall: check.fall,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// Why a declared listener cannot be served (reported in its status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("unreadable listener declaration: {0}")]
    Unreadable(String),
    #[error("address is null and node {node:?} has no address in the manifest (set the listener's address)")]
    NoAddress { node: String },
    #[error(
        "address is null and no --node is given (set the listener's address, or run with --node)"
    )]
    NoNode,
    #[error("https needs tls.certificateFile and tls.keyFile")]
    NoTls,
}

/// Which declared listeners this uc-lb serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every listener under /uc/v1/lb/listeners/ (flags without --node).
    All,
    /// Those whose `nodes` include this node (flags with --node).
    Node(String),
    /// These names (the config file's `listeners`, rendered by Nix).
    Names(std::collections::BTreeSet<String>),
}

impl Selection {
    pub fn includes(&self, name: &str, nodes: Option<&[String]>) -> bool {
        match self {
            Selection::All => true,
            Selection::Node(node) => nodes.is_some_and(|nodes| nodes.iter().any(|n| n == node)),
            Selection::Names(names) => names.contains(name),
        }
    }
}
