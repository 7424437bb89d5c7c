//! Where services run, as uc-dns and uc-lb both resolve them: the manifest
//! (node addresses, service ports), the scheduler's assignments, the
//! node-agents' instance statuses and the nodes taken out of traffic.
//! `serving` lists a service's instances that are assigned, reported
//! healthy and not on a drained node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Deserialize;
use uc_types::keys::{self, Key};
use uc_types::{InstanceState, ManifestRevision};

use crate::Read;

/// The part of an assignment (`uc_types::Assignment`) read. Partial on
/// purpose, as in the scheduler: a field added by a newer writer must not
/// make every instance look unassigned.
#[derive(Deserialize)]
struct Assigned {
    node: String,
    #[serde(default)]
    ports: BTreeMap<String, u16>,
}

/// The part of an instance status (`uc_types::InstanceStatus`) read.
#[derive(Deserialize)]
struct Reported {
    state: InstanceState,
    address: IpAddr,
    #[serde(default)]
    ports: BTreeMap<String, u16>,
}

/// The part of a traffic drain (`uc_types::TrafficDrain`) read.
#[derive(Deserialize)]
struct Drain {
    drained: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Instance {
    healthy: bool,
    address: IpAddr,
    ports: BTreeMap<String, u16>,
}

#[derive(Debug, Default)]
pub struct Placement {
    manifest: Option<ManifestRevision>,
    /// (service, assignment id) → (node, ports).
    assignments: BTreeMap<(String, String), (String, BTreeMap<String, u16>)>,
    /// (node, instance name) → what its node-agent reports.
    instances: BTreeMap<(String, String), Instance>,
    /// Nodes out of traffic.
    drained: BTreeSet<String>,
}

/// An instance of a service that serves now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serving<'a> {
    pub node: &'a str,
    pub instance: &'a str,
    /// The address its node-agent reported.
    pub reported: IpAddr,
    /// Port name → number, from its assignment and from its status.
    pub assigned_ports: &'a BTreeMap<String, u16>,
    pub reported_ports: &'a BTreeMap<String, u16>,
}

impl Placement {
    /// What the initial read needs for this view.
    pub fn reads() -> [Read; 4] {
        [
            Read::Key(keys::manifest_current()),
            Read::Prefix(keys::services_prefix()),
            Read::Prefix(keys::instances_prefix()),
            // For the traffic drains (`nodes/<node>/traffic`).
            Read::Prefix(keys::nodes_prefix()),
        ]
    }

    /// Applies a put (`Some(value)`) or a delete (`None`) of `key`; whether
    /// it may change what serves (false for keys this view does not read,
    /// and for a drain rewritten unchanged). An unreadable value counts as
    /// absent: the assignment, status or drain is gone.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        match keys::parse(key) {
            Some(Key::ManifestCurrent) => {
                self.manifest = value.and_then(|v| match serde_json::from_slice(v) {
                    Ok(manifest) => Some(manifest),
                    Err(err) => {
                        tracing::error!(%key, %err, "cannot read the manifest; services resolve to their instances' reported addresses");
                        None
                    }
                });
                true
            }
            Some(Key::ServiceAssignment { service, id }) => {
                let entry = (service.to_owned(), id.to_owned());
                match value.and_then(|v| serde_json::from_slice::<Assigned>(v).ok()) {
                    Some(a) => self.assignments.insert(entry, (a.node, a.ports)),
                    None => self.assignments.remove(&entry),
                };
                true
            }
            Some(Key::InstanceStatus { node, instance }) => {
                let entry = (node.to_owned(), instance.to_owned());
                match value.and_then(|v| serde_json::from_slice::<Reported>(v).ok()) {
                    Some(s) => self.instances.insert(
                        entry,
                        Instance {
                            healthy: s.state == InstanceState::Healthy,
                            address: s.address,
                            ports: s.ports,
                        },
                    ),
                    None => self.instances.remove(&entry),
                };
                true
            }
            Some(Key::NodeTraffic { node }) => {
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

    pub fn manifest(&self) -> Option<&ManifestRevision> {
        self.manifest.as_ref()
    }

    /// `service`'s instances that serve now: assigned by the scheduler,
    /// reported healthy by their node-agent, on a node not out of traffic;
    /// in assignment order.
    pub fn serving<'a>(&'a self, service: &'a str) -> impl Iterator<Item = Serving<'a>> + 'a {
        self.assignments
            .range((service.to_owned(), String::new())..)
            .take_while(move |((s, _), _)| s == service)
            .filter(|(_, (node, _))| !self.drained.contains(node))
            .filter_map(move |((_, id), (node, assigned_ports))| {
                let key = (node.clone(), keys::instance_name(service, id));
                let (entry, instance) = self.instances.get_key_value(&key)?;
                instance.healthy.then_some(Serving {
                    node,
                    instance: &entry.1,
                    reported: instance.address,
                    assigned_ports,
                    reported_ports: &instance.ports,
                })
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn nodes(placement: &Placement) -> Vec<(String, String)> {
        placement
            .serving("web")
            .map(|s| (s.node.to_owned(), s.reported.to_string()))
            .collect()
    }

    fn status(address: &str, state: &str) -> Vec<u8> {
        format!(r#"{{"state":"{state}","address":"{address}","ports":{{"http":8082}}}}"#)
            .into_bytes()
    }

    #[test]
    fn serving_instances_are_assigned_healthy_and_not_drained() {
        let mut placement = Placement::default();
        // Fields from a newer writer do not hide an instance.
        let assignment = br#"{"node":"n1","ports":{"http":8081},"later":1}"#;
        assert!(placement.apply(&keys::service_assignment("web", "0"), Some(assignment)));
        placement.apply(
            &keys::service_assignment("web", "1"),
            Some(br#"{"node":"n2"}"#),
        );
        placement.apply(
            &keys::service_assignment("other", "0"),
            Some(br#"{"node":"n1"}"#),
        );
        let key =
            |node: &str, id: &str| keys::instance_status(node, &keys::instance_name("web", id));
        assert!(placement.apply(&key("n1", "0"), Some(&status("10.0.0.1", "healthy"))));
        placement.apply(&key("n2", "1"), Some(&status("10.0.0.2", "unhealthy")));
        assert_eq!(nodes(&placement), [("n1".into(), "10.0.0.1".into())]);
        let first = placement.serving("web").next().unwrap();
        assert_eq!(
            (
                first.instance,
                first.assigned_ports["http"],
                first.reported_ports["http"]
            ),
            ("web-0", 8081, 8082)
        );

        placement.apply(&key("n2", "1"), Some(&status("10.0.0.2", "healthy")));
        assert_eq!(nodes(&placement).len(), 2);
        // Out of traffic, then back.
        let drain = br#"{"drained":true,"reason":"rollout 1","since":0,"rollout":1}"#;
        assert!(placement.apply(&keys::node_traffic("n1"), Some(drain)));
        assert!(
            !placement.apply(&keys::node_traffic("n1"), Some(drain)),
            "unchanged"
        );
        assert_eq!(nodes(&placement), [("n2".into(), "10.0.0.2".into())]);
        assert!(
            !placement.apply(&keys::node_traffic("n2"), Some(b"{")),
            "unreadable drains nothing"
        );
        assert!(placement.apply(&keys::node_traffic("n1"), None));
        assert_eq!(nodes(&placement).len(), 2);
        // Unassigned, or its status gone: not serving.
        placement.apply(&keys::service_assignment("web", "0"), None);
        placement.apply(&key("n2", "1"), None);
        assert!(nodes(&placement).is_empty());
    }

    #[test]
    fn other_keys_are_not_read() {
        let mut placement = Placement::default();
        for key in [
            "/uc/v1/nodes/w1/heartbeat",
            "/uc/v1/services/web/spec",
            "/other",
        ] {
            assert!(!placement.apply(key, Some(b"{}")), "{key}");
        }
        assert!(placement.apply(&keys::manifest_current(), Some(b"not json")));
        assert!(placement.manifest().is_none());
    }
}
