//! Values stored under the keyspace: what the deployer wants a node to run,
//! and what the node's nix-agent observed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesiredSystem {
    /// The NixOS system (toplevel) store path.
    pub store_path: String,
    /// Increases with every new desired system of this node.
    pub generation: u64,
    /// The rollout that set it, if any.
    pub rollout: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SystemState {
    /// Fetching, activating or health-checking `storePath`.
    Switching,
    /// Running `storePath`, health checks passed.
    Healthy,
    /// `storePath` could not be fetched or verified; nothing was switched.
    Failed,
    /// Switching to the desired system failed; back on `storePath`, the previous one.
    RolledBack,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObservedSystem {
    /// What the node runs now (for `switching`: what it is switching to).
    pub store_path: Option<String>,
    pub state: SystemState,
    /// The desired generation this report answers.
    pub generation: u64,
    /// Unix seconds when `state` was entered.
    pub since: u64,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_system_json_is_the_contract() {
        let observed = ObservedSystem {
            store_path: Some("/nix/store/abc-system".into()),
            state: SystemState::RolledBack,
            generation: 7,
            since: 1_700_000_000,
            error: Some("health check failed".into()),
        };
        let json = serde_json::to_value(&observed).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({"storePath": "/nix/store/abc-system", "state": "rolled-back",
                "generation": 7, "since": 1_700_000_000u64, "error": "health check failed"})
        );
    }
}
