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
    fn lb_listener_status_reads_what_uc_lb_writes() {
        // As uc-lb's report.rs serialises it, plus a field this reader
        // does not know (a newer uc-lb's): ignored, not an error.
        let written = serde_json::json!({"node": "edge1", "listener": "www",
            "protocol": "http", "address": "127.0.0.1:8080", "serving": true, "error": null,
            "backends": [{"address": "10.0.0.1:80", "state": "up", "later": 1},
                {"address": "10.0.0.2:80", "state": "draining"}]});
        let status: LbListenerStatus = serde_json::from_value(written).expect("parse");
        assert_eq!(status.backends[0].state, LbBackendState::Up);
        assert_eq!(status.backends[1].state.as_str(), "draining");
        assert_eq!(status.backends[0].health(), "up");
        assert_eq!(status.backends[1].health(), "draining");
        assert_eq!(status.listening_on(), "127.0.0.1:8080");
        let mut vip: LbListenerStatus = serde_json::from_value(serde_json::json!({
            "node": "edge1", "listener": "www", "address": "10.0.0.100:80", "serving": true,
            "vip": {"holder": "edge2", "held": false, "interface": null, "error": null}}))
        .expect("parse a status with a VIP");
        assert_eq!(vip.listening_on(), "10.0.0.100:80 (VIP, held by edge2)");
        vip.vip = Some(LbVipStatus {
            holder: Some("edge1".into()),
            held: true,
            interface: Some("eth0".into()),
            error: None,
        });
        assert_eq!(vip.listening_on(), "10.0.0.100:80 (VIP, held here on eth0)");
        let mut draining = status.backends[1].clone();
        draining.connections = Some(3);
        assert_eq!(draining.health(), "draining (3 open connections)");
        for state in [
            LbBackendState::Up,
            LbBackendState::Down,
            LbBackendState::Unknown,
            LbBackendState::Draining,
        ] {
            assert_eq!(
                serde_json::to_value(state).ok(),
                Some(state.as_str().into())
            );
        }
    }

    #[test]
    fn dns_server_status_reads_what_uc_dns_writes() {
        // A field this reader does not know (a newer uc-dns'): ignored.
        let written = serde_json::json!({"node": "ns1", "health": "ok", "storeRevision": 12,
            "storeLag": 0, "lastError": null, "later": true,
            "zones": {"example.org": {"serial": 9, "records": 4, "signed": true, "later": 1}}});
        let status: DnsServerStatus = serde_json::from_value(written).expect("parse");
        assert_eq!(status.health, "ok");
        assert_eq!(
            status.zones["example.org"],
            DnsServedZone {
                serial: 9,
                records: 4,
                signed: true
            }
        );
        let back = serde_json::to_value(&status).expect("serialise");
        assert_eq!(back["storeRevision"], 12);
        assert_eq!(back["zones"]["example.org"]["serial"], 9);
    }

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
    /// How long a node taken out of traffic may keep open connections
    /// before it is switched anyway (absent in records written before
    /// drains: the schema's default).
    #[serde(default = "default_drain_timeout_seconds")]
    pub drain_timeout_seconds: u64,
    pub auto_revert: bool,
    /// Unix seconds when the current wave started.
    pub wave_started: u64,
    pub error: Option<String>,
}

fn default_drain_timeout_seconds() -> u64 {
    30
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

/// `/uc/v1/nodes/<node>/traffic` (`keys::node_traffic`): the node is out of
/// traffic while `drained`. Written by the deployer before a rollout
/// switches the node (`rollout` names it, so the deployer restores only its
/// own drains), deleted when the node reports the new system healthy or the
/// rollout halts. Read by uc-lb (no new connections to the node's
/// instances) and uc-dns (its addresses leave `service` records). Unknown
/// fields are ignored: a newer writer may say more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficDrain {
    pub drained: bool,
    /// Why, for an operator (`rollout 7`).
    pub reason: String,
    /// Unix seconds when the drain was written; the wait for open
    /// connections is bounded from here.
    pub since: u64,
    #[serde(default)]
    pub rollout: Option<u64>,
    /// The node's backends some uc-lb had in rotation when it was drained:
    /// once restored (`drained: false`) the deployer waits for them to be
    /// back in rotation before it drains the next wave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serving: Vec<LbBackendRef>,
}

/// One backend of one uc-lb's listener (`keys::lb_listener_status(lb, listener)`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LbBackendRef {
    /// The node of the uc-lb.
    pub lb: String,
    pub listener: String,
    pub address: std::net::SocketAddr,
}

/// `/uc/v1/dns/status/<node>` (`keys::dns_server_status`): what the uc-dns
/// on `node` serves now, written by it only, on its lease (the key
/// disappears with that uc-dns). Rewritten when it publishes a snapshot or
/// its health changes. Unknown fields are ignored on read, as for
/// [`LbListenerStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsServerStatus {
    pub node: String,
    /// `ok`, `degraded` (answering from the last snapshot, the store is not
    /// reachable) or `starting` (nothing read yet: every query is REFUSED).
    pub health: String,
    /// The store revision at uc-dns' last probe (0: not probed yet).
    #[serde(default)]
    pub store_revision: i64,
    /// Revisions the store was ahead of what uc-dns applied.
    #[serde(default)]
    pub store_lag: i64,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Zone apex (as declared) to what is served of it.
    #[serde(default)]
    pub zones: std::collections::BTreeMap<String, DnsServedZone>,
}

/// One zone of a [`DnsServerStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsServedZone {
    /// The SOA serial answered now.
    pub serial: u32,
    /// Records served (after service records are resolved).
    #[serde(default)]
    pub records: usize,
    /// Answers are DNSSEC-signed.
    #[serde(default)]
    pub signed: bool,
}

/// `/uc/v1/lb/status/<node>/<listener>` (`keys::lb_listener_status`): one
/// uc-lb's view of one listener, written by the uc-lb on `node` only, on its
/// lease (the key disappears with that uc-lb). Read by the deployer's API
/// and dashboard. Unknown fields are ignored, unlike the declared records:
/// a newer uc-lb may report more than this reader shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LbListenerStatus {
    pub node: String,
    pub listener: String,
    #[serde(default)]
    pub protocol: Option<crate::ListenerProtocol>,
    /// Where it listens; `null` when it is not bound.
    #[serde(default)]
    pub address: Option<std::net::SocketAddr>,
    /// Bound and accepting.
    pub serving: bool,
    /// Why it does not serve (spec, bind or TLS problem).
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub backends: Vec<LbBackendStatus>,
    /// Who holds the listener's address, when it is a VIP (an address on
    /// no interface of the node, held by one LB node at a time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<LbVipStatus>,
}

impl LbListenerStatus {
    /// Where it listens, in words, as `uc lb` and the dashboard show it:
    /// the address, and for a VIP who holds it.
    pub fn listening_on(&self) -> String {
        let address = self.address.map(|a| a.to_string()).unwrap_or_default();
        match &self.vip {
            None => address,
            Some(vip) if vip.held => match &vip.interface {
                Some(interface) => format!("{address} (VIP, held here on {interface})"),
                None => format!("{address} (VIP, held here)"),
            },
            Some(LbVipStatus {
                holder: Some(holder),
                ..
            }) => format!("{address} (VIP, held by {holder})"),
            Some(_) => format!("{address} (VIP, no holder)"),
        }
    }
}

/// The VIP of an [`LbListenerStatus`], as that uc-lb sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LbVipStatus {
    /// The node holding it, as the store says (`null`: nobody, or unknown).
    #[serde(default)]
    pub holder: Option<String>,
    /// This node holds it (the address is on `interface`).
    #[serde(default)]
    pub held: bool,
    #[serde(default)]
    pub interface: Option<String>,
    /// Why this node cannot hold it.
    #[serde(default)]
    pub error: Option<String>,
}

/// One backend of an [`LbListenerStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LbBackendStatus {
    pub address: std::net::SocketAddr,
    pub state: LbBackendState,
    /// Open connections, reported while `draining` (an in-rotation
    /// backend's count changes with every request; it is in /metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LbBackendState {
    /// Passing its health check: in rotation.
    Up,
    /// Failing its health check: out of rotation.
    Down,
    /// Not probed yet.
    Unknown,
    /// Removed from the listener; its open connections are finishing.
    Draining,
}

impl LbBackendStatus {
    /// Its health in words, as `uc lb` and the dashboard show it:
    /// `up`, `down`, `unknown (not probed yet)`, `draining` or
    /// `draining (N open connections)`.
    pub fn health(&self) -> String {
        match (self.state, self.connections) {
            (LbBackendState::Unknown, _) => "unknown (not probed yet)".to_owned(),
            (LbBackendState::Draining, Some(1)) => "draining (1 open connection)".to_owned(),
            (LbBackendState::Draining, Some(n)) => format!("draining ({n} open connections)"),
            (state, _) => state.as_str().to_owned(),
        }
    }
}

impl LbBackendState {
    /// The name it has in JSON (`up`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            LbBackendState::Up => "up",
            LbBackendState::Down => "down",
            LbBackendState::Unknown => "unknown",
            LbBackendState::Draining => "draining",
        }
    }
}
