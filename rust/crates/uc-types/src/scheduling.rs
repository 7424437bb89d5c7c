//! Values the scheduler reads and writes: where each instance runs, which
//! nodes are cordoned, who schedules, and why a service is not fully placed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `/uc/v1/services/<svc>/assignments/<id>`: instance `<id>` of a service runs
/// on `node`. Written only by the active scheduler; read by node-agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Assignment {
    pub node: String,
    /// Port name (`services.<svc>.ports`) to the port the instance listens on.
    pub ports: BTreeMap<String, u16>,
}

/// `/uc/v1/nodes/<node>/cordon`: the node takes no new instances. With
/// `drain`, its instances are also moved away, at most `maxUnavailable` of
/// each service at a time. Absent: the node is schedulable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeCordon {
    pub drain: bool,
    #[serde(default)]
    pub reason: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub since: u64,
}

/// `/uc/v1/scheduler/leader`: the active scheduler, on a key bound to its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderRecord {
    pub holder: String,
    /// Unix seconds.
    pub since: u64,
}

/// `/uc/v1/scheduler/status/<svc>`: why a service is not as declared.
/// Present only while some replica is unplaced or a drain is blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementStatus {
    pub replicas: u32,
    pub placed: u32,
    /// Replicas with no node.
    pub unplaced: u32,
    /// Instances left on a draining or lost node because no other node fits.
    pub stuck: Vec<String>,
    /// Node to each placement constraint it failed (every node of the manifest).
    pub reasons: BTreeMap<String, Vec<String>>,
}

/// How an instance is doing, as its node-agent last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Running; its health check has not passed yet.
    Starting,
    /// Running, and its health check (if any) passes. The only state the
    /// scheduler, DNS and load balancers count as serving.
    Healthy,
    /// Failing its health check, exited and waiting to restart, or unable
    /// to start (see `phase` and `message`).
    Unhealthy,
}

impl InstanceState {
    /// The name it has in JSON (`healthy`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Healthy => "healthy",
            InstanceState::Unhealthy => "unhealthy",
        }
    }
}

/// What the node-agent is doing with an instance's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstancePhase {
    Running,
    /// Exited; restarts after a backoff that doubles with each crash.
    Backoff,
    /// Cannot be started (missing secret file, bad command); retried with backoff.
    Failed,
}

impl InstancePhase {
    /// The name it has in JSON (`running`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            InstancePhase::Running => "running",
            InstancePhase::Backoff => "backoff",
            InstancePhase::Failed => "failed",
        }
    }
}

/// `/uc/v1/instances/<node>/<service>-<id>/status`: written by the node's
/// uc-node-agent on its heartbeat lease, so it vanishes with the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceStatus {
    pub service: String,
    pub id: String,
    pub state: InstanceState,
    pub phase: InstancePhase,
    /// Main process (its process group, or systemd unit, holds the rest).
    pub pid: Option<u32>,
    /// Restarts since the node-agent first started this instance.
    pub restarts: u32,
    /// Where the instance listens: the node's address and its ports.
    pub address: std::net::IpAddr,
    pub ports: BTreeMap<String, u16>,
    /// Unix seconds when `state` last changed.
    pub since: u64,
    /// The last exit, health check failure or start error.
    #[serde(default)]
    pub message: Option<String>,
}

/// `/uc/v1/nodes/<node>/heartbeat`: the node-agent is alive (a key on its
/// lease) and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeHeartbeat {
    /// Base URL of the node-agent's HTTP endpoint (`/instances`, `/logs/…`).
    pub url: String,
    pub address: std::net::IpAddr,
    /// Unix seconds the agent started.
    pub since: u64,
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduling_json_is_the_contract() {
        let assignment = Assignment {
            node: "w1".into(),
            ports: BTreeMap::from([("http".to_owned(), 8080)]),
        };
        assert_eq!(
            serde_json::to_value(&assignment).expect("serialise"),
            serde_json::json!({"node": "w1", "ports": {"http": 8080}})
        );
        let cordon: NodeCordon = serde_json::from_str(r#"{"drain":true}"#).expect("parse");
        assert_eq!(
            cordon,
            NodeCordon {
                drain: true,
                reason: None,
                since: 0
            }
        );
        let status = PlacementStatus {
            replicas: 2,
            placed: 1,
            unplaced: 1,
            stuck: vec![],
            reasons: BTreeMap::from([("w1".to_owned(), vec!["cordoned".to_owned()])]),
        };
        assert_eq!(
            serde_json::to_value(&status).expect("serialise"),
            serde_json::json!({"replicas": 2, "placed": 1, "unplaced": 1, "stuck": [],
                "reasons": {"w1": ["cordoned"]}})
        );
        for state in [
            InstanceState::Starting,
            InstanceState::Healthy,
            InstanceState::Unhealthy,
        ] {
            assert_eq!(
                serde_json::to_value(state).ok(),
                Some(state.as_str().into())
            );
        }
        for phase in [
            InstancePhase::Running,
            InstancePhase::Backoff,
            InstancePhase::Failed,
        ] {
            assert_eq!(
                serde_json::to_value(phase).ok(),
                Some(phase.as_str().into())
            );
        }
    }
}
