//! What uc-dns reads from the keyspace, kept up to date key by key from the
//! initial read and the watch: declared zones, and where services run
//! (`uc_store_mirror::Placement`: the manifest's node addresses and service
//! ports, assignments, instance statuses, nodes out of traffic).
//! `endpoints` turns the latter into a service record's addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;

use uc_store_mirror::Placement;
use uc_types::keys::{self, Key};

use crate::build::{NamedPort, ServiceEndpoints};

/// A zone's declaration as stored: parsed, or why not.
#[derive(Debug, Clone)]
pub struct StoredZone {
    /// Shared: the parse error is kept with the zone and cloned with it.
    pub spec: Result<uc_types::Zone, std::sync::Arc<serde_json::Error>>,
    pub mod_revision: i64,
}

#[derive(Debug, Default)]
pub struct StoreState {
    pub zones: BTreeMap<String, StoredZone>,
    /// The manifest, assignments, instance statuses and drains.
    placement: Placement,
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
        if let Some(Key::DnsZone { zone }) = keys::parse(key) {
            match value {
                Some(value) => {
                    let spec = serde_json::from_slice(value).map_err(std::sync::Arc::new);
                    self.zones
                        .insert(zone.to_owned(), StoredZone { spec, mod_revision });
                }
                None => {
                    self.zones.remove(zone);
                }
            }
            return Changed::Zone;
        }
        if self.placement.apply(key, value) {
            Changed::Services
        } else {
            Changed::Nothing
        }
    }

    /// Where `service` runs healthily now: the addresses of every node with
    /// an instance serving (`Placement::serving`: assigned, reported
    /// healthy, not out of traffic, so clients go elsewhere while a rollout
    /// switches a node), from the manifest, else the one in the instance's
    /// status; and its ports.
    pub fn endpoints(&self, service: &str) -> ServiceEndpoints {
        let manifest = self.placement.manifest().map(|m| &m.manifest);
        let mut addresses: Vec<IpAddr> = Vec::new();
        for serving in self.placement.serving(service) {
            let node_addresses = match manifest.and_then(|m| m.nodes.get(serving.node)) {
                Some(node) if !node.addresses.is_empty() => node.addresses.clone(),
                _ => vec![serving.reported],
            };
            for address in node_addresses {
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
        }
        addresses.sort();
        let ports = manifest
            .and_then(|m| m.services.get(service))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;
    use uc_types::{Assignment, InstancePhase, InstanceState, InstanceStatus};

    fn manifest() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../hosts/ha/manifest.json"
        );
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let revision = serde_json::json!({"revision": 1, "importedAt": 0, "systems": {}, "manifest": manifest});
        serde_json::to_vec(&revision).unwrap()
    }

    fn assign(state: &mut StoreState, id: &str, node: &str) {
        let assignment = Assignment {
            node: node.to_owned(),
            ports: BTreeMap::new(),
        };
        let value = serde_json::to_vec(&assignment).unwrap();
        state.apply(&keys::service_assignment("web", id), Some(&value), 1);
    }

    fn report(state: &mut StoreState, node: &str, id: &str, address: &str, healthy: bool) {
        let status = InstanceStatus {
            service: "web".into(),
            id: id.into(),
            state: if healthy {
                InstanceState::Healthy
            } else {
                InstanceState::Unhealthy
            },
            phase: InstancePhase::Running,
            pid: None,
            restarts: 0,
            address: address.parse().unwrap(),
            ports: BTreeMap::new(),
            since: 0,
            message: None,
        };
        let key = keys::instance_status(node, &keys::instance_name("web", id));
        state.apply(&key, Some(&serde_json::to_vec(&status).unwrap()), 1);
    }

    fn addresses(state: &StoreState) -> Vec<String> {
        state
            .endpoints("web")
            .addresses
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_service_answers_nodes_with_an_assigned_healthy_instance() {
        let mut state = StoreState::default();
        assert_eq!(
            state.apply(&keys::manifest_current(), Some(&manifest()), 1),
            Changed::Services
        );
        assign(&mut state, "0", "worker1");
        assign(&mut state, "1", "worker2");
        report(&mut state, "worker1", "0", "192.0.2.99", true);
        report(&mut state, "worker2", "1", "10.1.0.22", false);
        // The manifest's address wins over the one reported.
        assert_eq!(addresses(&state), ["10.1.0.21"]);
        report(&mut state, "worker2", "1", "10.1.0.22", true);
        assert_eq!(addresses(&state), ["10.1.0.21", "10.1.0.22"]);
        // Healthy but no longer assigned there: not answered.
        state.apply(&keys::service_assignment("web", "1"), None, 2);
        assert_eq!(addresses(&state), ["10.1.0.21"]);
        let ports = state.endpoints("web").ports;
        assert_eq!((ports[0].name.as_str(), ports[0].port), ("http", 8080));
    }

    #[test]
    fn a_node_out_of_traffic_leaves_the_service_records_until_restored() {
        let mut state = StoreState::default();
        state.apply(&keys::manifest_current(), Some(&manifest()), 1);
        assign(&mut state, "0", "worker1");
        assign(&mut state, "1", "worker2");
        report(&mut state, "worker1", "0", "10.1.0.21", true);
        report(&mut state, "worker2", "1", "10.1.0.22", true);
        let drain = uc_types::TrafficDrain {
            drained: true,
            reason: "rollout 3".into(),
            since: 0,
            rollout: Some(3),
            serving: Vec::new(),
        };
        let key = keys::node_traffic("worker1");
        let value = serde_json::to_vec(&drain).unwrap();
        assert_eq!(state.apply(&key, Some(&value), 2), Changed::Services);
        assert_eq!(addresses(&state), ["10.1.0.22"]);
        // Written again unchanged: nothing to rebuild.
        assert_eq!(state.apply(&key, Some(&value), 3), Changed::Nothing);
        // `drained: false` and unreadable records drain nothing.
        let undrained = serde_json::to_vec(&uc_types::TrafficDrain {
            drained: false,
            ..drain
        })
        .unwrap();
        assert_eq!(state.apply(&key, Some(&undrained), 4), Changed::Services);
        assert_eq!(addresses(&state), ["10.1.0.21", "10.1.0.22"]);
        assert_eq!(state.apply(&key, Some(b"{"), 5), Changed::Nothing);
        assert_eq!(state.apply(&key, Some(&value), 6), Changed::Services);
        assert_eq!(state.apply(&key, None, 7), Changed::Services);
        assert_eq!(addresses(&state), ["10.1.0.21", "10.1.0.22"]);
    }

    #[test]
    fn without_the_node_in_the_manifest_the_reported_address_is_used() {
        let mut state = StoreState::default();
        assign(&mut state, "0", "elsewhere");
        report(&mut state, "elsewhere", "0", "192.0.2.7", true);
        assert_eq!(addresses(&state), ["192.0.2.7"]);
        assert!(state.endpoints("web").ports.is_empty());
    }

    #[test]
    fn fields_from_a_newer_writer_do_not_hide_an_instance() {
        let mut state = StoreState::default();
        let assignment = br#"{"node":"n1","ports":{},"addedLater":true}"#;
        state.apply(&keys::service_assignment("web", "0"), Some(assignment), 1);
        let status = br#"{"state":"healthy","address":"192.0.2.8","addedLater":1}"#;
        let key = keys::instance_status("n1", &keys::instance_name("web", "0"));
        state.apply(&key, Some(status), 1);
        assert_eq!(addresses(&state), ["192.0.2.8"]);
    }

    #[test]
    fn other_keys_change_nothing() {
        let mut state = StoreState::default();
        for key in [
            "/uc/v1/nodes/w1/heartbeat",
            "/uc/v1/services/web/spec",
            "/other",
        ] {
            assert_eq!(state.apply(key, Some(b"{}"), 1), Changed::Nothing, "{key}");
        }
    }
}
