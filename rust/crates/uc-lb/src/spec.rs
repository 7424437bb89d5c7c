//! What uc-lb serves, resolved: one `ListenerSpec` per listener, with its
//! address to bind and its backends as socket addresses. Built by
//! `store::StoreState::desired` from the declared listener and the
//! cluster's state; compared by value to decide what a change touches.

use std::collections::BTreeMap;
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
    /// The default backends (HTTP: of requests no route takes). Sorted,
    /// without duplicates.
    pub backends: Vec<SocketAddr>,
    /// Weights of `backends` other than 1.
    pub weights: BTreeMap<SocketAddr, u32>,
    /// HTTP: the first route that matches a request takes it.
    pub routes: Vec<RouteSpec>,
    pub health: HealthSpec,
    /// Certificate chain and key files (`https` only).
    pub tls: Option<TlsFiles>,
    /// Send a PROXY protocol v2 header to backends (TCP).
    pub proxy_protocol: bool,
    /// The XDP fast path for this listener's address (src/xdp).
    pub xdp: uc_types::ListenerXdp,
    /// The listener's own timeouts; `None`: the daemon's.
    pub timeouts: uc_types::LbTimeouts,
    /// TLS towards the backends (HTTP listeners).
    pub backend_tls: Option<BackendTlsSpec>,
}

impl ListenerSpec {
    /// Whether a change to `other` needs a new socket (else the running
    /// listener takes the new backends and settings in place).
    pub fn rebind_needed(&self, other: &ListenerSpec) -> bool {
        // A backendTls change restarts the listener: its pool and probes
        // start over with the new TLS settings together.
        self.protocol != other.protocol
            || self.bind != other.bind
            || self.tls != other.tls
            || self.backend_tls != other.backend_tls
    }

    /// The backend groups the pool chooses from: the default first, then
    /// one per route, in order.
    pub fn groups(&self) -> Vec<Group> {
        let default = Group {
            matcher: None,
            backends: self.backends.clone(),
            weights: self.weights.clone(),
        };
        std::iter::once(default)
            .chain(self.routes.iter().map(|r| Group {
                matcher: Some(Matcher {
                    host: r.host.clone(),
                    path_prefix: r.path_prefix.clone(),
                }),
                backends: r.backends.clone(),
                weights: r.weights.clone(),
            }))
            .collect()
    }
}

/// An L7 route, resolved like the listener's backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Lowercase; `*.example.org` for its subdomains; `None`: any host.
    pub host: Option<String>,
    pub path_prefix: String,
    pub backends: Vec<SocketAddr>,
    pub weights: BTreeMap<SocketAddr, u32>,
}

/// Backends chosen from together (the listener's default, or a route's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `None`: the default group, taking what no route matches.
    pub matcher: Option<Matcher>,
    pub backends: Vec<SocketAddr>,
    pub weights: BTreeMap<SocketAddr, u32>,
}

impl Group {
    pub fn weight(&self, backend: &SocketAddr) -> u32 {
        self.weights.get(backend).copied().unwrap_or(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub host: Option<String>,
    pub path_prefix: String,
}

impl Matcher {
    /// Whether a request for `host` (as sent: any case, maybe with a port)
    /// and `path` is this route's.
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if !path.starts_with(&self.path_prefix) {
            return false;
        }
        let Some(wanted) = &self.host else {
            return true;
        };
        let Some(host) = host else {
            return false;
        };
        let host = strip_port(host);
        match wanted.strip_prefix("*.") {
            Some(parent) => {
                host.len() > parent.len() + 1
                    && host[host.len() - parent.len()..].eq_ignore_ascii_case(parent)
                    && host.as_bytes()[host.len() - parent.len() - 1] == b'.'
            }
            None => host.eq_ignore_ascii_case(wanted),
        }
    }
}

/// `host` without `:port` (and without the brackets of an IPv6 literal).
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
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

/// TLS towards backends: verified against `ca_file` only, by
/// `server_name`, else by the backend's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendTlsSpec {
    pub ca_file: PathBuf,
    pub server_name: Option<String>,
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
    #[error("backendTls.enable needs backendTls.caFile (the system's roots are not used)")]
    NoBackendCa,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_host_and_path() {
        let route = |host: Option<&str>, prefix: &str| Matcher {
            host: host.map(str::to_owned),
            path_prefix: prefix.to_owned(),
        };
        // (route, request host, path, matches)
        let table = [
            (route(None, "/"), None, "/x", true),
            (route(None, "/api/"), Some("a"), "/api/v1", true),
            (route(None, "/api/"), Some("a"), "/apix", false),
            (
                route(Some("a.example"), "/"),
                Some("A.Example:8080"),
                "/",
                true,
            ),
            (route(Some("a.example"), "/"), Some("b.example"), "/", false),
            (route(Some("a.example"), "/"), None, "/", false),
            (
                route(Some("*.example"), "/"),
                Some("x.a.example"),
                "/",
                true,
            ),
            (route(Some("*.example"), "/"), Some("example"), "/", false),
            (route(Some("*.example"), "/"), Some("xexample"), "/", false),
            (route(Some("::1"), "/"), Some("[::1]:80"), "/", true),
        ];
        for (matcher, host, path, expected) in table {
            assert_eq!(
                matcher.matches(host, path),
                expected,
                "{matcher:?} {host:?} {path}"
            );
        }
    }
}
