//! Consistency of a parsed manifest: every name that points elsewhere points at
//! something declared. Nix validates the same rules before rendering; this
//! guards against hand-edited or truncated manifests reaching the store.

use std::collections::BTreeMap;
use std::fmt;

use crate::{Manifest, SCHEMA_VERSION};

/// One inconsistency, at a path in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn nodes_exist<'a>(
        &mut self,
        manifest: &Manifest,
        path: &str,
        names: impl IntoIterator<Item = &'a String>,
    ) {
        for name in names {
            if !manifest.nodes.contains_key(name) {
                self.add(
                    path,
                    format!("names node \"{name}\", which is not in nodes"),
                );
            }
        }
    }
}

impl Manifest {
    /// Lists every inconsistency; empty when the manifest is consistent.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Problems(Vec::new());

        if self.store.members.is_empty() {
            p.add("store.members", "is empty: the cluster has no store");
        }
        p.nodes_exist(
            self,
            "store.members",
            self.store.members.iter().map(|m| &m.name),
        );

        for (name, node) in &self.nodes {
            let path = format!("nodes.{name}");
            if node.roles.is_empty() {
                p.add(&path, "has no roles");
            }
            if node.addresses.is_empty() {
                p.add(&path, "has no addresses");
            }
            for (daemon, version, cluster, node_name) in node.daemons.headers() {
                let path = format!("{path}.daemons.{daemon}");
                if version != SCHEMA_VERSION {
                    p.add(
                        &path,
                        format!("has schemaVersion {version}, expected {SCHEMA_VERSION}"),
                    );
                }
                if cluster != self.cluster.name {
                    p.add(
                        &path,
                        format!(
                            "is for cluster \"{cluster}\", not \"{}\"",
                            self.cluster.name
                        ),
                    );
                }
                if node_name != name {
                    p.add(
                        &path,
                        format!("is for node \"{node_name}\", not \"{name}\""),
                    );
                }
            }
        }

        for (name, service) in &self.services {
            let path = format!("services.{name}");
            p.nodes_exist(
                self,
                &format!("{path}.eligibleNodes"),
                &service.eligible_nodes,
            );
            if service.placement.anti_affinity
                && service.replicas as usize > service.eligible_nodes.len()
            {
                p.add(
                    format!("{path}.replicas"),
                    format!(
                        "is {} but only {} node(s) are eligible",
                        service.replicas,
                        service.eligible_nodes.len()
                    ),
                );
            }
            if let Some(port) = service.health_check.as_ref().and_then(|h| h.port.as_ref()) {
                if !service.ports.contains_key(port) {
                    p.add(
                        format!("{path}.healthCheck.port"),
                        format!("names port \"{port}\", which the service does not have"),
                    );
                }
            }
            for listener in &service.listeners {
                if !self.lb.listeners.contains_key(listener) {
                    p.add(
                        format!("{path}.listeners"),
                        format!("names listener \"{listener}\", which is not in lb.listeners"),
                    );
                }
            }
        }

        p.nodes_exist(self, "lb.nodes", &self.lb.nodes);
        for (name, listener) in &self.lb.listeners {
            let path = format!("lb.listeners.{name}");
            p.nodes_exist(self, &format!("{path}.nodes"), &listener.nodes);
            if let Some(service) = &listener.backends.service {
                match self.services.get(service) {
                    None => p.add(
                        format!("{path}.backends.service"),
                        format!("names service \"{service}\", which is not in services"),
                    ),
                    Some(svc) => match &listener.backends.service_port {
                        Some(port) if svc.ports.contains_key(port) => {}
                        Some(port) => p.add(
                            format!("{path}.backends.servicePort"),
                            format!(
                                "names port \"{port}\", which service \"{service}\" does not have"
                            ),
                        ),
                        None => p.add(
                            format!("{path}.backends.servicePort"),
                            "is null although backends.service is set",
                        ),
                    },
                }
            } else if listener.backends.endpoints.is_empty() {
                p.add(
                    format!("{path}.backends"),
                    "has neither a service nor endpoints",
                );
            }
        }

        p.nodes_exist(self, "dns.servers", &self.dns.servers);
        for (zone, z) in &self.dns.zones {
            for (i, record) in z.records.iter().enumerate() {
                if let Some(service) = &record.service {
                    if !self.services.contains_key(service) {
                        p.add(
                            format!("dns.zones.\"{zone}\".records.{i}.service"),
                            format!("names service \"{service}\", which is not in services"),
                        );
                    }
                }
            }
        }

        p.nodes_exist(self, "rollout.canary", &self.rollout.canary);
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for wave in &self.rollout.waves {
            p.nodes_exist(self, "rollout.waves", wave);
            for node in wave {
                *seen.entry(node.as_str()).or_default() += 1;
            }
        }
        for name in self.nodes.keys() {
            match seen.get(name.as_str()) {
                Some(1) => {}
                None => p.add("rollout.waves", format!("never switches node \"{name}\"")),
                Some(n) => p.add(
                    "rollout.waves",
                    format!("switches node \"{name}\" {n} times"),
                ),
            }
        }

        p.0
    }
}
