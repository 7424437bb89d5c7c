//! Per-daemon configs: each is the JSON file one daemon reads from
//! `/etc/ultracloud/<daemon>.json`, rendered by `lib/render/daemons.nix`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{ContractError, SwitchAction};

/// A daemon's config file: its name under `/etc/ultracloud/` and in
/// `manifest.nodes.<node>.daemons`.
pub trait DaemonConfig: DeserializeOwned + Serialize {
    const DAEMON: &'static str;

    /// Where NixOS puts the file.
    fn default_path() -> PathBuf {
        PathBuf::from(format!("/etc/ultracloud/{}.json", Self::DAEMON))
    }

    fn load(path: &Path) -> Result<Self, ContractError> {
        crate::load_versioned(path)
    }

    fn from_json(what: &str, text: &str) -> Result<Self, ContractError> {
        crate::parse_versioned(what, text)
    }
}

/// The daemons a node runs, each with its config; absent ones do not run there.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDaemons {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub store: Option<StoreConfig>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deployer: Option<DeployerConfig>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scheduler: Option<SchedulerConfig>,
    #[serde(rename = "nix-agent", skip_serializing_if = "Option::is_none", default)]
    pub nix_agent: Option<NixAgentConfig>,
    #[serde(
        rename = "node-agent",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub node_agent: Option<NodeAgentConfig>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns: Option<DnsConfig>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lb: Option<LbConfig>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iam: Option<IamConfig>,
}

impl NodeDaemons {
    /// Names of the daemons present, in rendering order.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.store.is_some() {
            names.push(StoreConfig::DAEMON);
        }
        if self.deployer.is_some() {
            names.push(DeployerConfig::DAEMON);
        }
        if self.scheduler.is_some() {
            names.push(SchedulerConfig::DAEMON);
        }
        if self.nix_agent.is_some() {
            names.push(NixAgentConfig::DAEMON);
        }
        if self.node_agent.is_some() {
            names.push(NodeAgentConfig::DAEMON);
        }
        if self.dns.is_some() {
            names.push(DnsConfig::DAEMON);
        }
        if self.lb.is_some() {
            names.push(LbConfig::DAEMON);
        }
        if self.iam.is_some() {
            names.push(IamConfig::DAEMON);
        }
        names
    }

    /// (schemaVersion, cluster, node) of each present config, for consistency checks.
    pub(crate) fn headers(&self) -> Vec<(&'static str, u32, &str, &str)> {
        macro_rules! header {
            ($field:expr, $ty:ty) => {
                $field.as_ref().map(|c| {
                    (
                        <$ty>::DAEMON,
                        c.schema_version,
                        c.cluster.as_str(),
                        c.node.as_str(),
                    )
                })
            };
        }
        [
            header!(self.store, StoreConfig),
            header!(self.deployer, DeployerConfig),
            header!(self.scheduler, SchedulerConfig),
            header!(self.nix_agent, NixAgentConfig),
            header!(self.node_agent, NodeAgentConfig),
            header!(self.dns, DnsConfig),
            header!(self.lb, LbConfig),
            header!(self.iam, IamConfig),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// uc-store: flag names and meanings follow etcd's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreConfig {
    pub schema_version: u32,
    pub cluster: String,
    pub node: String,
    /// Member name (etcd's --name).
    pub name: String,
    pub data_dir: String,
    pub listen_client_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer_urls: Vec<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    pub listen_metrics_urls: Vec<String>,
    pub initial_cluster: Vec<InitialMember>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    pub election_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// etcd's --auto-compaction-retention: hours, or a duration such as `30m`; `0` is off.
    pub auto_compaction_retention: String,
    pub quota_backend_bytes: u64,
    /// Linearizable reads on the leader's lease (uc-store's --lease-reads).
    pub lease_reads: bool,
}

impl DaemonConfig for StoreConfig {
    const DAEMON: &'static str = "store";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitialMember {
    pub name: String,
    pub peer_urls: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterState {
    New,
    Existing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployerConfig {
    pub schema_version: u32,
    pub cluster: String,
    pub node: String,
    /// API, binary cache, dashboard, /metrics and /health.
    pub http_listen: SocketAddr,
    pub store_endpoints: Vec<String>,
    pub data_dir: String,
    pub enrollment_token_file: String,
    pub cache: CacheConfig,
}

impl DaemonConfig for DeployerConfig {
    const DAEMON: &'static str = "deployer";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheConfig {
    pub signing_key_file: String,
    pub public_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulerConfig {
    pub schema_version: u32,
    pub cluster: String,
    pub node: String,
    pub http_listen: SocketAddr,
    pub store_endpoints: Vec<String>,
    pub node_loss_grace_seconds: u64,
}

impl DaemonConfig for SchedulerConfig {
    const DAEMON: &'static str = "scheduler";
}

/// uc-iam (docs/iam.md): its key and secret files are paths on the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IamConfig {
    pub schema_version: u32,
    pub cluster: String,
    pub node: String,
    pub http_listen: SocketAddr,
    pub store_endpoints: Vec<String>,
    pub signing_key_file: String,
    pub bootstrap_admin_secret_file: String,
    pub token_ttl_seconds: u64,
    pub audit_retention_seconds: u64,
}

impl DaemonConfig for IamConfig {
    const DAEMON: &'static str = "iam";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NixAgentConfig {
    pub schema_version: u32,
    pub cluster: String,
    pub node: String,
    pub http_listen: SocketAddr,
    pub store_endpoints: Vec<String>,
    pub profile: String,
    pub state_dir: String,
    pub cache_urls: Vec<String>,
    pub trusted_public_keys: Vec<String>,
    pub switch_action: SwitchAction,
    pub health_gate_timeout_seconds: u64,
    /// Run after every switch; all must pass within the health gate.
    pub health_checks: Vec<SystemHealthCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SystemHealthCheck {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: crate::HealthCheckType,
    /// argv of an `exec` check.
    pub command: Vec<String>,
    /// `host:port` of a `tcp` check.
    pub address: Option<String>,
    /// URL of an `http` check.
    pub url: Option<String>,
    pub timeout_seconds: u64,
}

impl DaemonConfig for NixAgentConfig {
    const DAEMON: &'static str = "nix-agent";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAgentConfig {
    pub schema_version: u32,
    pub cluster: String,
    pub node: String,
    pub http_listen: SocketAddr,
    pub store_endpoints: Vec<String>,
    /// The node's address instances bind to (`UC_ADDRESS`).
    pub address: IpAddr,
    pub state_dir: String,
    pub heartbeat_ttl_seconds: u64,
}

impl DaemonConfig for NodeAgentConfig {
    const DAEMON: &'static str = "node-agent";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsConfig {
    pub schema_version: u32,
    pub cluster: String,
    pub node: String,
    pub http_listen: SocketAddr,
    pub store_endpoints: Vec<String>,
    /// UDP and TCP.
    pub listen: Vec<SocketAddr>,
    pub zones: Vec<String>,
}

impl DaemonConfig for DnsConfig {
    const DAEMON: &'static str = "dns";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbConfig {
    pub schema_version: u32,
    pub cluster: String,
    pub node: String,
    pub http_listen: SocketAddr,
    pub store_endpoints: Vec<String>,
    /// Names of the listeners (in `manifest.lb.listeners`) this node runs.
    pub listeners: Vec<String>,
    /// Absent in configs written before it existed: the defaults.
    #[serde(default)]
    pub vip: LbVip,
}

/// `cluster.lb.vip`: how this node holds the VIPs it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbVip {
    /// Interface a held VIP goes on; `None`: the one whose subnet holds it.
    pub interface: Option<String>,
    pub lease_ttl_seconds: u32,
}

impl Default for LbVip {
    fn default() -> Self {
        LbVip {
            interface: None,
            lease_ttl_seconds: 5,
        }
    }
}

impl DaemonConfig for LbConfig {
    const DAEMON: &'static str = "lb";
}
