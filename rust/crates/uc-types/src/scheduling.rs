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
    }
}
