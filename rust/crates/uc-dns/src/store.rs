//! What uc-dns reads from the keyspace, kept up to date key by key from the
//! initial read and the watch: declared zones, the manifest (node addresses
//! and service ports), the scheduler's assignments and the node-agents'
//! instance statuses. `endpoints` turns the last three into where each
//! service runs healthily now.

use std::collections::BTreeMap;
use std::net::IpAddr;

use uc_types::keys::{self, Key};
use uc_types::{Assignment, InstanceState, InstanceStatus, ManifestRevision};

use crate::build::{NamedPort, ServiceEndpoints};

/// A zone's declaration as stored: parsed, or why not.
#[derive(Debug, Clone)]
pub struct StoredZone {
    pub spec: Result<uc_types::Zone, String>,
    pub mod_revision: i64,
}

#[derive(Debug, Default)]
pub struct StoreState {
    pub zones: BTreeMap<String, StoredZone>,
    manifest: Option<ManifestRevision>,
    /// (service, assignment id) → node.
    assignments: BTreeMap<(String, String), String>,
    /// (node, instance name) → (reported healthy, the address it reported).
    instances: BTreeMap<(String, String), (bool, IpAddr)>,
}

/// Which part of the state a change touched, so a reload redoes only that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    Zone,
    Services,
    Nothing,
}

impl StoreState {
    /// Applies a put (`Some(value)`) or a delete (`None`) of `key`.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>, mod_revision: i64) -> Changed {
        match keys::parse(key) {
            Some(Key::DnsZone { zone }) => {
                match value {
                    Some(value) => {
                        let spec = serde_json::from_slice(value).map_err(|err| err.to_string());
                        self.zones
                            .insert(zone.to_owned(), StoredZone { spec, mod_revision });
                    }
                    None => {
                        self.zones.remove(zone);
                    }
                }
                Changed::Zone
            }
            Some(Key::ManifestCurrent) => {
                self.manifest = value.and_then(|value| match serde_json::from_slice(value) {
                    Ok(manifest) => Some(manifest),
                    Err(err) => {
                        tracing::error!(%key, %err, "cannot read the manifest; service records answer from instance statuses only");
                        None
                    }
                });
                Changed::Services
            }
            Some(Key::ServiceAssignment { service, id }) => {
                let entry = (service.to_owned(), id.to_owned());
                match value.and_then(|v| serde_json::from_slice::<Assignment>(v).ok()) {
                    Some(assignment) => self.assignments.insert(entry, assignment.node),
                    None => self.assignments.remove(&entry),
                };
                Changed::Services
            }
            Some(Key::InstanceStatus { node, instance }) => {
                let entry = (node.to_owned(), instance.to_owned());
                let healthy = value
                    .and_then(|v| serde_json::from_slice::<InstanceStatus>(v).ok())
                    .map(|status| (status.state == InstanceState::Healthy, status.address));
                match healthy {
                    Some(seen) => self.instances.insert(entry, seen),
                    None => self.instances.remove(&entry),
                };
                Changed::Services
            }
            _ => Changed::Nothing,
        }
    }

    /// Where `service` runs healthily now: the addresses of every node with
    /// an assigned instance reported healthy (the node's addresses from the
    /// manifest, else the one in the instance's status), and its ports.
    pub fn endpoints(&self, service: &str) -> ServiceEndpoints {
        let mut addresses: Vec<IpAddr> = Vec::new();
        let assigned = self
            .assignments
            .range((service.to_owned(), String::new())..)
            .take_while(|((s, _), _)| s == service);
        for ((_, id), node) in assigned {
            let instance = (node.clone(), keys::instance_name(service, id));
            let Some((true, reported)) = self.instances.get(&instance).copied() else {
                continue;
            };
            let from_manifest = self
                .manifest
                .as_ref()
                .and_then(|m| m.manifest.nodes.get(node))
                .map(|n| n.addresses.clone());
            let node_addresses = match from_manifest {
                Some(list) if !list.is_empty() => list,
                _ => vec![reported],
            };
            for address in node_addresses {
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
        }
        addresses.sort();
        let ports = self
            .manifest
            .as_ref()
            .and_then(|m| m.manifest.services.get(service))
            .map(|spec| {
                spec.ports
                    .iter()
                    .map(|(name, port)| NamedPort {
                        name: name.clone(),
                        protocol: port.protocol,
                        port: port.port,
                    })
                    .collect()
            })
            .unwrap_or_default();
        ServiceEndpoints { addresses, ports }
    }
}
