//! What uc-lb reads from the keyspace, kept up to date key by key: the
//! declared listeners, and where services run (`uc_store_mirror::Placement`:
//! the manifest's node addresses and service ports, assignments, instance
//! statuses, nodes out of traffic, whose instances are no backends).
//! `desired` resolves them into the listeners to serve (pure).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use uc_store_mirror::Placement;
use uc_types::keys::{self, Key};
use uc_types::{Backends, Listener, ListenerProtocol};

use crate::spec::{
    BackendTlsSpec, HealthSpec, ListenerSpec, RouteSpec, Selection, SpecError, TlsFiles,
};

#[derive(Debug, Default)]
pub struct StoreState {
    listeners: BTreeMap<String, Result<Listener, SpecError>>,
    /// The manifest, assignments, instance statuses and drains.
    placement: Placement,
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
            _ => self.placement.apply(key, value),
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
        let backend_tls = match (listener.protocol, &listener.backend_tls) {
            (ListenerProtocol::Http | ListenerProtocol::Https, declared) if declared.enable => {
                let ca_file = declared.ca_file.as_ref().ok_or(SpecError::NoBackendCa)?;
                Some(BackendTlsSpec {
                    ca_file: ca_file.into(),
                    server_name: declared.server_name.clone(),
                })
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
            backend_tls,
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
        self.placement
            .manifest()
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
            .placement
            .manifest()
            .and_then(|m| m.manifest.services.get(service));
        let named = |ports: &BTreeMap<String, u16>| match port {
            Some(name) => ports.get(name).copied(),
            None if ports.len() == 1 => ports.values().next().copied(),
            None => None,
        };
        let mut out = Vec::new();
        for serving in self.placement.serving(service) {
            let address = self.node_address(serving.node).unwrap_or(serving.reported);
            let from_spec = spec.and_then(|s| {
                let ports: BTreeMap<String, u16> =
                    s.ports.iter().map(|(n, p)| (n.clone(), p.port)).collect();
                named(&ports)
            });
            let number = named(serving.assigned_ports)
                .or_else(|| named(serving.reported_ports))
                .or(from_spec);
            match number {
                Some(number) => out.push(SocketAddr::new(address, number)),
                None => {
                    tracing::warn!(service, instance = %serving.instance, ?port, "no port for the listener's servicePort; instance skipped")
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
