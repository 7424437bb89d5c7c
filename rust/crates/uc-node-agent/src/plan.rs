//! What one instance runs: its command line, environment, secrets, ports and
//! health check, derived from the service spec and its assignment. The
//! fingerprint tells a changed spec (restart) from an unchanged one (keep).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uc_types::{keys, Assignment, HealthCheckType, Service};

/// Why a service's spec and assignment give no runnable instance.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("service {service} has an empty exec.command")]
    EmptyCommand { service: String },
    #[error("service {service}: health check port {port} is not among the assigned ports")]
    HealthPortNotAssigned { service: String, port: String },
    #[error("service {service}: a {kind:?} health check needs a port")]
    HealthPortMissing {
        service: String,
        kind: HealthCheckType,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstancePlan {
    /// `<service>-<id>`: the unit, log and status name.
    pub name: String,
    pub service: String,
    pub id: String,
    pub argv: Vec<String>,
    /// `environment` plus the `UC_*` variables.
    pub env: BTreeMap<String, String>,
    /// Variable to the secret file on the node; the instance gets
    /// `<VAR>_FILE` naming a private copy.
    pub secret_files: BTreeMap<String, String>,
    pub address: IpAddr,
    pub ports: BTreeMap<String, u16>,
    pub health: Option<Probe>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub kind: HealthCheckType,
    /// tcp/http: the resolved port.
    pub port: Option<u16>,
    pub path: String,
    pub command: Vec<String>,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
}

impl InstancePlan {
    pub fn new(
        node: &str,
        address: IpAddr,
        service: &str,
        id: &str,
        spec: &Service,
        assignment: &Assignment,
    ) -> Result<InstancePlan, PlanError> {
        let name = keys::instance_name(service, id);
        let mut argv = spec.exec.command.clone();
        let Some(program) = argv.first_mut() else {
            return Err(PlanError::EmptyCommand {
                service: service.into(),
            });
        };
        if !program.contains('/') {
            if let Some(package) = &spec.exec.package {
                *program = format!("{package}/bin/{program}");
            }
        }
        let mut env = spec.environment.clone();
        env.insert("UC_NODE".into(), node.into());
        env.insert("UC_ADDRESS".into(), address.to_string());
        env.insert("UC_SERVICE".into(), service.into());
        env.insert("UC_INSTANCE".into(), name.clone());
        for (port_name, port) in &assignment.ports {
            env.insert(port_variable(port_name), port.to_string());
        }
        let health = match &spec.health_check {
            None => None,
            Some(check) => {
                let port = match (&check.kind, &check.port) {
                    (HealthCheckType::Exec, _) => None,
                    (_, Some(port_name)) => {
                        Some(*assignment.ports.get(port_name).ok_or_else(|| {
                            PlanError::HealthPortNotAssigned {
                                service: service.into(),
                                port: port_name.clone(),
                            }
                        })?)
                    }
                    (_, None) => {
                        return Err(PlanError::HealthPortMissing {
                            service: service.into(),
                            kind: check.kind,
                        })
                    }
                };
                Some(Probe {
                    kind: check.kind,
                    port,
                    path: check.path.clone(),
                    command: check.command.clone(),
                    interval_seconds: check.interval_seconds.max(1),
                    timeout_seconds: check.timeout_seconds.max(1),
                    failure_threshold: check.failure_threshold.max(1),
                })
            }
        };
        Ok(InstancePlan {
            name,
            service: service.into(),
            id: id.into(),
            argv,
            env,
            secret_files: spec.secret_files.clone(),
            address,
            ports: assignment.ports.clone(),
            health,
        })
    }

    /// FNV-1a over the plan's JSON: stable across agent builds, so an
    /// upgraded agent adopts rather than restarts unchanged instances.
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in json {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

/// `UC_PORT_<NAME>`: upper case, `-` and `.` as `_`.
pub fn port_variable(port_name: &str) -> String {
    let name: String = port_name
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("UC_PORT_{name}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn web() -> Service {
        let manifest = include_str!("../../../../hosts/ha/manifest.json");
        let m: serde_json::Value = serde_json::from_str(manifest).unwrap();
        serde_json::from_value(m["services"]["web"].clone()).unwrap()
    }

    #[test]
    fn plan_has_the_documented_environment_and_resolved_check() {
        let assignment = Assignment {
            node: "w1".into(),
            ports: BTreeMap::from([("http".to_owned(), 8080)]),
        };
        let address: IpAddr = "10.0.0.5".parse().unwrap();
        let plan = InstancePlan::new("w1", address, "web", "0", &web(), &assignment).unwrap();
        assert_eq!(plan.name, "web-0");
        assert_eq!(plan.env["UC_PORT_HTTP"], "8080");
        assert_eq!(plan.env["UC_ADDRESS"], "10.0.0.5");
        assert_eq!(plan.env["UC_NODE"], "w1");
        assert_eq!(plan.env["GREETING"], "hello from ha");
        assert_eq!(plan.health.as_ref().unwrap().port, Some(8080));
        assert_eq!(
            plan.secret_files["SESSION_KEY"],
            "/run/secrets/web-session-key"
        );
        let same = InstancePlan::new("w1", address, "web", "0", &web(), &assignment).unwrap();
        assert_eq!(plan.fingerprint(), same.fingerprint());
        let mut changed = web();
        changed.environment.insert("GREETING".into(), "hi".into());
        let other = InstancePlan::new("w1", address, "web", "0", &changed, &assignment).unwrap();
        assert_ne!(plan.fingerprint(), other.fingerprint());
    }

    #[test]
    fn relative_commands_resolve_in_the_package() {
        let mut spec = web();
        spec.exec.package = Some("/nix/store/abc-hello".into());
        spec.exec.command = vec!["hello".into(), "-g".into(), "hi".into()];
        let assignment = Assignment {
            node: "w1".into(),
            ports: BTreeMap::from([("http".to_owned(), 8080)]),
        };
        let address: IpAddr = "10.0.0.5".parse().unwrap();
        let plan = InstancePlan::new("w1", address, "web", "1", &spec, &assignment).unwrap();
        assert_eq!(plan.argv[0], "/nix/store/abc-hello/bin/hello");
        spec.exec.command = vec![];
        let err = InstancePlan::new("w1", address, "web", "1", &spec, &assignment)
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty exec.command"), "{err}");
        assert_eq!(port_variable("metrics-v2"), "UC_PORT_METRICS_V2");
    }
}
