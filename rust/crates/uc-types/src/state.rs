//! Values stored under the keyspace: what the deployer wants a node to run,
//! and what the node's nix-agent observed.

use serde::{Deserialize, Serialize};

/// Now, in the unix seconds the stored values carry (`since`, `importedAt`, …).
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

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

impl SystemState {
    /// The name it has in JSON (`rolled-back`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SystemState::Switching => "switching",
            SystemState::Healthy => "healthy",
            SystemState::Failed => "failed",
            SystemState::RolledBack => "rolled-back",
        }
    }
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
        for state in [
            SystemState::Switching,
            SystemState::Healthy,
            SystemState::Failed,
            SystemState::RolledBack,
        ] {
            assert_eq!(
                serde_json::to_value(state).ok(),
                Some(state.as_str().into())
            );
        }
        for state in [
            RolloutState::Running,
            RolloutState::Paused,
            RolloutState::Succeeded,
            RolloutState::Failed,
            RolloutState::Aborted,
        ] {
            assert_eq!(
                serde_json::to_value(state).ok(),
                Some(state.as_str().into())
            );
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutState {
    Running,
    Paused,
    Succeeded,
    Failed,
    Aborted,
}

impl RolloutState {
    /// The name it has in JSON (`running`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Paused => "paused",
            RolloutState::Succeeded => "succeeded",
            RolloutState::Failed => "failed",
            RolloutState::Aborted => "aborted",
        }
    }
}

/// A rollout in progress or finished: `/uc/v1/rollouts/current`, written only
/// by the deployer. Everything needed to resume it after a deployer restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutRecord {
    /// The manifest revision being rolled out; desired generations derive from it.
    pub id: u64,
    pub state: RolloutState,
    /// Nodes to switch, wave by wave (the manifest's waves, limited to `targets`).
    pub waves: Vec<Vec<String>>,
    /// Index of the wave in progress (== waves.len() when done).
    pub wave: usize,
    /// Node to the system it is being moved to.
    pub targets: std::collections::BTreeMap<String, String>,
    /// Node to the system it ran before, for reverts.
    pub previous: std::collections::BTreeMap<String, Option<String>>,
    pub health_gate_timeout_seconds: u64,
    pub auto_revert: bool,
    /// Unix seconds when the current wave started.
    pub wave_started: u64,
    pub error: Option<String>,
}

impl RolloutRecord {
    /// The desired generation a node is given when moved forward by this rollout.
    pub fn forward_generation(&self) -> u64 {
        self.id * 2
    }

    /// The desired generation of a revert by this rollout (after its forward one).
    pub fn revert_generation(&self) -> u64 {
        self.id * 2 + 1
    }
}

/// An imported manifest: `/uc/v1/manifest/current` and
/// `/uc/v1/manifest/history/<revision>`, written only by the deployer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestRevision {
    pub revision: u64,
    /// Unix seconds.
    pub imported_at: u64,
    /// Node to the NixOS system (toplevel store path) built for it.
    pub systems: std::collections::BTreeMap<String, String>,
    pub manifest: crate::Manifest,
}
