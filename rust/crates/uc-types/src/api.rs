//! Answers of the deployer's HTTP API that other programs read: built by
//! uc-deployer, read by `uc` and the deployer's dashboard.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{InstanceStatus, NodeCordon, PlacementStatus};

/// `GET /api/v1/services`: every service with its instances and why
/// replicas are unplaced; every node of the deployed manifest with its
/// heartbeat and cordon. What `uc services` and `uc logs` read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicesView {
    /// Service name (`manifest.services.<service>`) to how it runs.
    pub services: BTreeMap<String, ServiceView>,
    /// Node name (`manifest.nodes.<node>`) to how it is doing; empty before
    /// the first deployment.
    pub nodes: BTreeMap<String, NodeView>,
}

/// One service of a [`ServicesView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceView {
    /// Replicas declared; `null` when the stored spec is unreadable.
    pub replicas: Option<u32>,
    /// One per assignment, in assignment id order.
    pub instances: Vec<InstanceView>,
    /// The scheduler's status (`/uc/v1/scheduler/status/<service>`);
    /// `null` while every replica is placed.
    pub placement: Option<PlacementStatus>,
}

/// One instance (assignment) of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceView {
    /// The assignment id.
    pub id: String,
    /// `<service>-<id>`, the name on its node (`keys::instance_name`).
    pub name: String,
    pub node: String,
    /// Port name to the port the instance listens on.
    pub ports: BTreeMap<String, u16>,
    /// What the node-agent last reported; `null` before its first report.
    pub status: Option<InstanceStatus>,
    /// Base URL of the node's node-agent (for logs); `null` when the node
    /// has no live heartbeat.
    pub agent_url: Option<String>,
}

/// One node of a [`ServicesView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeView {
    /// Its node-agent's heartbeat key exists.
    pub alive: bool,
    /// Base URL of its node-agent, when the heartbeat is readable.
    pub agent_url: Option<String>,
    /// `null` when the node is schedulable.
    pub cordon: Option<NodeCordon>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InstancePhase, InstanceState};

    #[test]
    fn services_view_json_is_the_contract() {
        let view = ServicesView {
            services: BTreeMap::from([(
                "web".to_owned(),
                ServiceView {
                    replicas: Some(2),
                    instances: vec![InstanceView {
                        id: "0".into(),
                        name: "web-0".into(),
                        node: "w1".into(),
                        ports: BTreeMap::from([("http".to_owned(), 8080)]),
                        status: Some(InstanceStatus {
                            service: "web".into(),
                            id: "0".into(),
                            state: InstanceState::Healthy,
                            phase: InstancePhase::Running,
                            pid: Some(42),
                            restarts: 1,
                            address: [10, 0, 0, 1].into(),
                            ports: BTreeMap::from([("http".to_owned(), 8080)]),
                            since: 7,
                            message: None,
                        }),
                        agent_url: Some("http://10.0.0.1:7490".into()),
                    }],
                    placement: None,
                },
            )]),
            nodes: BTreeMap::from([(
                "w1".to_owned(),
                NodeView {
                    alive: true,
                    agent_url: Some("http://10.0.0.1:7490".into()),
                    cordon: Some(NodeCordon {
                        drain: true,
                        reason: None,
                        since: 9,
                    }),
                },
            )]),
        };
        let json = serde_json::to_value(&view).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({
                "services": {"web": {"replicas": 2, "placement": null, "instances": [{
                    "id": "0", "name": "web-0", "node": "w1", "ports": {"http": 8080},
                    "agentUrl": "http://10.0.0.1:7490",
                    "status": {"service": "web", "id": "0", "state": "healthy",
                        "phase": "running", "pid": 42, "restarts": 1, "address": "10.0.0.1",
                        "ports": {"http": 8080}, "since": 7, "message": null}}]}},
                "nodes": {"w1": {"alive": true, "agentUrl": "http://10.0.0.1:7490",
                    "cordon": {"drain": true, "reason": null, "since": 9}}}
            })
        );
        let back: ServicesView = serde_json::from_value(json).expect("parse");
        assert_eq!(back, view);
    }
}
