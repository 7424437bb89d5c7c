//! What uc-lb reads from the keyspace, kept up to date key by key: the
//! declared listeners, the manifest (node addresses, service ports), the
//! scheduler's assignments, the node-agents' instance statuses and the
//! nodes taken out of traffic (a drained node's instances are no backends).
//! `desired` resolves them into the listeners to serve (pure).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;
use uc_types::keys::{self, Key};
use uc_types::{Backends, InstanceState, Listener, ListenerProtocol, ManifestRevision};

use crate::spec::{HealthSpec, ListenerSpec, RouteSpec, Selection, SpecError, TlsFiles};

/// The part of an assignment uc-lb reads (partial on purpose, as in
/// uc-dns: a field added by a newer writer must not hide the instance).
#[derive(Deserialize)]
struct AssignedNode {
    node: String,
    #[serde(default)]
    ports: BTreeMap<String, u16>,
}

#[derive(Deserialize)]
struct ReportedHealth {
    state: InstanceState,
    address: IpAddr,
    #[serde(default)]
    ports: BTreeMap<String, u16>,
}

/// The part of a traffic drain (`uc_types::TrafficDrain`) uc-lb reads.
#[derive(Deserialize)]
struct Drain {
    drained: bool,
}

/// An instance as its node-agent reports it: healthy, address, ports.
type Reported = (bool, IpAddr, BTreeMap<String, u16>);

#[derive(Debug, Default)]
pub struct StoreState {
    listeners: BTreeMap<String, Result<Listener, SpecError>>,
    manifest: Option<ManifestRevision>,
    /// (service, assignment id) → (node, ports).
    assignments: BTreeMap<(String, String), (String, BTreeMap<String, u16>)>,
    /// (node, instance name) → (healthy, address, ports).
    instances: BTreeMap<(String, String), Reported>,
    /// Nodes out of traffic: their instances get no new connections.
    drained: BTreeSet<String>,
}

impl StoreState {
    /// Applies a put (`Some(value)`) or delete (`None`); whether it is a key
    /// uc-lb reads.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        match keys::parse(key) {
            Some(Key::LbListener { name }) => {
                match value {
                    Some(v) => {
                        let spec = serde_json::from_slice(v)
                            .map_err(|err| SpecError::Unreadable(err.to_string()));
                        self.listeners.insert(name.to_owned(), spec);
                    }
                    None => {
                        self.listeners.remove(name);
                    }
                }
                true
            }
            Some(Key::ManifestCurrent) => {
                self.manifest = value.and_then(|v| match serde_json::from_slice(v) {
                    Ok(manifest) => Some(manifest),
                    Err(err) => {
                        tracing::error!(%key, %err, "cannot read the manifest; service backends use the instances' reported addresses");
                        None
                    }
                });
                true
            }
            Some(Key::ServiceAssignment { service, id }) => {
                let entry = (service.to_owned(), id.to_owned());
                match value.and_then(|v| serde_json::from_slice::<AssignedNode>(v).ok()) {
                    Some(a) => self.assignments.insert(entry, (a.node, a.ports)),
                    None => self.assignments.remove(&entry),
                };
                true
            }
            Some(Key::InstanceStatus { node, instance }) => {
                let entry = (node.to_owned(), instance.to_owned());
                match value.and_then(|v| serde_json::from_slice::<ReportedHealth>(v).ok()) {
                    Some(s) => self.instances.insert(
                        entry,
                        (s.state == InstanceState::Healthy, s.address, s.ports),
                    ),
                    None => self.instances.remove(&entry),
                };
                true
            }
            Some(Key::NodeTraffic { node }) => {
                // An unreadable record drains nothing (the node keeps serving).
                let drained = value
                    .and_then(|v| serde_json::from_slice::<Drain>(v).ok())
                    .is_some_and(|drain| drain.drained);
                if drained {
                    self.drained.insert(node.to_owned())
                } else {
                    self.drained.remove(node)
                }
            }
            _ => false,
        }
    }

    /// The listeners `selection` picks, resolved; `node` is this uc-lb's
    /// node (for a listener whose address is null).
    pub fn desired(
        &self,
        selection: &Selection,
        node: Option<&str>,
    ) -> BTreeMap<String, Result<ListenerSpec, SpecError>> {
        let mut out = BTreeMap::new();
        for (name, declared) in &self.listeners {
            let nodes = declared.as_ref().ok().map(|l| l.nodes.as_slice());
            if !selection.includes(name, nodes) {
                continue;
            }
            let resolved = match declared {
                Ok(listener) => self.resolve(name, listener, node),
                Err(err) => Err(err.clone()),
            };
            out.insert(name.clone(), resolved);
        }
        out
    }

    fn resolve(
        &self,
        name: &str,
        listener: &Listener,
        node: Option<&str>,
    ) -> Result<ListenerSpec, SpecError> {
        let address = match (listener.address, node) {
            (Some(address), _) => address,
            (None, Some(node)) => self
                .node_address(node)
                .ok_or_else(|| SpecError::NoAddress {
                    node: node.to_owned(),
                })?,
            (None, None) => return Err(SpecError::NoNode),
        };
        let tls = match listener.protocol {
            ListenerProtocol::Https => {
                match (&listener.tls.certificate_file, &listener.tls.key_file) {
                    (Some(certificate), Some(key)) => Some(TlsFiles {
                        certificate: certificate.into(),
                        key: key.into(),
                    }),
                    _ => return Err(SpecError::NoTls),
                }
            }
            _ => None,
        };
        let (backends, weights) = self.backends(name, &listener.backends);
        let routes = listener
            .routes
            .iter()
            .map(|route| {
                let (backends, weights) = self.backends(name, &route.backends);
                RouteSpec {
                    host: route.host.as_ref().map(|h| h.to_ascii_lowercase()),
                    path_prefix: route.path_prefix.clone(),
                    backends,
                    weights,
                }
            })
            .collect();
        Ok(ListenerSpec {
            name: name.to_owned(),
            protocol: listener.protocol,
            bind: SocketAddr::new(address, listener.port),
            policy: listener.balance.into(),
            backends,
            weights,
            routes,
            health: HealthSpec::from(&listener.health_check),
            tls,
            proxy_protocol: listener.proxy_protocol,
            xdp: listener.xdp.clone(),
            timeouts: listener.timeouts.clone(),
        })
    }

    /// A set of backends as addresses (sorted, unique) and the weights
    /// other than 1 (static endpoints only; service instances weigh 1).
    fn backends(
        &self,
        listener: &str,
        declared: &Backends,
    ) -> (Vec<SocketAddr>, BTreeMap<SocketAddr, u32>) {
        let mut backends: Vec<SocketAddr> = Vec::new();
        let mut weights = BTreeMap::new();
        for endpoint in &declared.endpoints {
            match endpoint.parse::<SocketAddr>() {
                Ok(addr) => {
                    backends.push(addr);
                    if let Some(weight) = declared.weights.get(endpoint).filter(|w| **w != 1) {
                        weights.insert(addr, *weight);
                    }
                }
                Err(err) => {
                    tracing::warn!(listener, %endpoint, %err, "endpoint is not address:port; skipped")
                }
            }
        }
        if let Some(service) = &declared.service {
            backends.extend(self.service_backends(service, declared.service_port.as_deref()));
        }
        backends.sort();
        backends.dedup();
        (backends, weights)
    }

    fn node_address(&self, node: &str) -> Option<IpAddr> {
        self.manifest
            .as_ref()
            .and_then(|m| m.manifest.nodes.get(node))
            .and_then(uc_types::Node::primary_address)
    }

    /// Where `service` runs healthily now, on the port named `port` (or its
    /// only port): each assigned instance reported healthy, at its node's
    /// first address in the manifest (else the address it reported), on the
    /// port its assignment, its status or the service's spec names. Not on
    /// a node out of traffic: removed, its open connections drain.
    fn service_backends(&self, service: &str, port: Option<&str>) -> Vec<SocketAddr> {
        let spec = self
            .manifest
            .as_ref()
            .and_then(|m| m.manifest.services.get(service));
        let mut out = Vec::new();
        let assigned = self
            .assignments
            .range((service.to_owned(), String::new())..)
            .take_while(|((s, _), _)| s == service);
        for ((_, id), (node, assigned_ports)) in assigned {
            if self.drained.contains(node) {
                continue;
            }
            let instance = (node.clone(), keys::instance_name(service, id));
            let Some((true, reported, reported_ports)) = self.instances.get(&instance) else {
                continue;
            };
            let address = self.node_address(node).unwrap_or(*reported);
            let named = |ports: &BTreeMap<String, u16>| match port {
                Some(name) => ports.get(name).copied(),
                None if ports.len() == 1 => ports.values().next().copied(),
                None => None,
            };
            let from_spec = spec.and_then(|s| {
                let ports: BTreeMap<String, u16> =
                    s.ports.iter().map(|(n, p)| (n.clone(), p.port)).collect();
                named(&ports)
            });
            let number = named(assigned_ports)
                .or_else(|| named(reported_ports))
                .or(from_spec);
            match number {
                Some(number) => out.push(SocketAddr::new(address, number)),
                None => {
                    tracing::warn!(service, instance = %instance.1, ?port, "no port for the listener's servicePort; instance skipped")
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
