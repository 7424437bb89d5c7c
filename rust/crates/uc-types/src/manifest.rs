//! The whole rendered cluster (`mkCluster`'s `manifest`), as imported by the
//! deployer. Field names follow the Nix option names (camelCase).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{ContractError, NodeDaemons};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub schema_version: u32,
    pub cluster: ClusterInfo,
    pub networks: Networks,
    pub nodes: BTreeMap<String, Node>,
    pub services: BTreeMap<String, Service>,
    pub dns: Dns,
    pub lb: Lb,
    pub rollout: Rollout,
    pub store: StoreTopology,
}

impl Manifest {
    /// Parses a manifest and checks that it is consistent (see `validate`).
    pub fn from_json(what: &str, text: &str) -> Result<Self, ContractError> {
        let manifest: Self = crate::parse_versioned(what, text)?;
        manifest.check(what)
    }

    pub fn load(path: &Path) -> Result<Self, ContractError> {
        let manifest: Self = crate::load_versioned(path)?;
        manifest.check(&path.display().to_string())
    }

    fn check(self, what: &str) -> Result<Self, ContractError> {
        let problems = self.validate();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ContractError::Inconsistent {
                what: what.to_owned(),
                problems,
            })
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterInfo {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Networks {
    pub management: ManagementNetwork,
    pub vlans: BTreeMap<String, Vlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagementNetwork {
    pub cidr: String,
    pub gateway: Option<IpAddr>,
    pub resolvers: Vec<IpAddr>,
    pub vlan: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Vlan {
    pub id: u16,
    pub cidr: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
    Edge,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
            Role::Edge => "edge",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    pub roles: Vec<Role>,
    /// The first address is the one daemons bind to and advertise.
    pub addresses: Vec<IpAddr>,
    pub identity: Identity,
    pub install: Option<Install>,
    pub labels: BTreeMap<String, String>,
    pub capacity: Capacity,
    pub daemons: NodeDaemons,
}

impl Node {
    pub fn primary_address(&self) -> Option<IpAddr> {
        self.addresses.first().copied()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Identity {
    pub mac_addresses: Vec<String>,
    pub dmi_serial: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Install {
    pub disk: Option<String>,
    pub layout: Option<String>,
    /// A disko `devices` tree, handed to disko as is.
    pub disko: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capacity {
    pub cpu_millis: u64,
    #[serde(rename = "memoryMiB")]
    pub memory_mib: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    pub exec: Exec,
    pub replicas: u32,
    pub placement: Placement,
    pub resources: Capacity,
    pub ports: BTreeMap<String, PortSpec>,
    pub health_check: Option<HealthCheck>,
    pub environment: BTreeMap<String, String>,
    /// Environment variable name to the path of a secret file on the node.
    pub secret_files: BTreeMap<String, String>,
    pub dns: Option<ServiceDns>,
    /// LB listeners whose backend is this service.
    pub listeners: Vec<String>,
    /// Nodes satisfying roles, labels and capacity, as Nix computed them.
    pub eligible_nodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exec {
    /// Store path whose `bin/` resolves a relative `command[0]`.
    pub package: Option<String>,
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    pub roles: Vec<Role>,
    pub labels: BTreeMap<String, String>,
    pub anti_affinity: bool,
    pub max_unavailable: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSpec {
    pub port: u16,
    pub protocol: Transport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckType {
    Http,
    Tcp,
    Exec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(rename = "type")]
    pub kind: HealthCheckType,
    /// Port name probed by http and tcp checks (null for exec).
    pub port: Option<String>,
    pub path: String,
    pub command: Vec<String>,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceDns {
    pub zone: String,
    pub name: String,
    pub fqdn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dns {
    pub servers: Vec<String>,
    pub port: u16,
    pub zones: BTreeMap<String, Zone>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Zone {
    pub ttl: u32,
    pub soa: Soa,
    pub nameservers: Vec<String>,
    pub records: Vec<Record>,
    pub ptr_patterns: Vec<PtrPattern>,
    /// Where NOTIFY goes and who may transfer the zone (AXFR, IXFR).
    /// Absent in zones written before it existed: none.
    #[serde(default)]
    pub secondaries: Vec<Secondary>,
    /// Online DNSSEC signing. Absent in zones written before it existed:
    /// unsigned.
    #[serde(default)]
    pub dnssec: Dnssec,
}

/// `cluster.dns.zones.<apex>.dnssec`: whether uc-dns signs the zone's
/// answers, and with which key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dnssec {
    pub enable: bool,
    /// Path on the node of the zone's PKCS#8 ECDSA P-256 private key (PEM
    /// or DER), outside the Nix store.
    #[serde(default)]
    pub key_file: Option<String>,
}

/// `cluster.dns.zones.<apex>.secondaries.*`: a secondary server of the zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secondary {
    pub address: IpAddr,
    /// NOTIFY's destination port (53 when absent).
    #[serde(default = "dns_port")]
    pub port: u16,
}

fn dns_port() -> u16 {
    53
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Soa {
    pub email: String,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    A,
    Aaaa,
    Cname,
    Txt,
    Mx,
    Srv,
    Ns,
    Caa,
    Ptr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    /// Owner relative to the zone; `@` is the apex.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: RecordType,
    pub ttl: u32,
    pub values: Vec<String>,
    /// Answered from the healthy instances of this service instead of `values`.
    pub service: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PtrPattern {
    pub network: String,
    pub pattern: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lb {
    pub nodes: Vec<String>,
    pub listeners: BTreeMap<String, Listener>,
    /// Absent in manifests written before it existed: BGP off.
    #[serde(default)]
    pub bgp: LbBgp,
}

/// `cluster.lb.bgp`: the VIPs an LB node holds, announced by BIRD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbBgp {
    pub enable: bool,
    pub asn: u32,
    pub peers: Vec<BgpPeer>,
}

impl Default for LbBgp {
    fn default() -> Self {
        LbBgp {
            enable: false,
            asn: 65000,
            peers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPeer {
    pub address: IpAddr,
    pub asn: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    Tcp,
    Udp,
    Http,
    Https,
}

impl ListenerProtocol {
    /// The name it has in JSON (`tcp`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::Tcp => "tcp",
            ListenerProtocol::Udp => "udp",
            ListenerProtocol::Http => "http",
            ListenerProtocol::Https => "https",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    RoundRobin,
    LeastConnections,
    /// Weighted consistent hashing of the client's address.
    Maglev,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    pub protocol: ListenerProtocol,
    pub port: u16,
    /// Null: each LB node's first address.
    pub address: Option<IpAddr>,
    pub nodes: Vec<String>,
    pub balance: Balance,
    pub backends: Backends,
    pub health_check: LbHealthCheck,
    pub tls: Tls,
    /// The fields below are absent in records written before them.
    /// PROXY protocol v2 towards backends (`tcp` only).
    #[serde(default)]
    pub proxy_protocol: bool,
    #[serde(default)]
    pub timeouts: LbTimeouts,
    /// `http`/`https`: first match wins; no match goes to `backends`.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// The XDP fast path; absent: off.
    #[serde(default)]
    pub xdp: ListenerXdp,
    /// TLS towards the backends (`http`/`https`); absent: plain HTTP.
    #[serde(default)]
    pub backend_tls: ListenerBackendTls,
}

/// TLS from an L7 listener to its backends, verified against `ca_file`
/// (a PEM bundle on the node); the name verified is `server_name`, else
/// the backend's address (then in the certificate's IP SANs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerBackendTls {
    pub enable: bool,
    pub ca_file: Option<String>,
    pub server_name: Option<String>,
}

/// The XDP fast path of a `tcp`/`udp` listener with a VIP address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerXdp {
    pub enable: bool,
    pub interface: Option<String>,
    #[serde(default)]
    pub mode: XdpMode,
}

/// Where the XDP program runs: in the driver, or after the kernel built
/// its socket buffer (every interface has that).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    #[default]
    Native,
    Generic,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backends {
    pub service: Option<String>,
    pub service_port: Option<String>,
    pub endpoints: Vec<String>,
    /// Weight per endpoint as written in `endpoints`; absent: 1.
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
}

/// Per-listener timeouts in seconds; null: uc-lb's flag of the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbTimeouts {
    pub connect_seconds: Option<u32>,
    pub idle_seconds: Option<u32>,
    pub client_header_seconds: Option<u32>,
    pub response_seconds: Option<u32>,
    pub drain_seconds: Option<u32>,
}

/// An L7 route: requests for `host` (null: any) whose path starts with
/// `path_prefix` go to `backends`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    pub host: Option<String>,
    pub path_prefix: String,
    pub backends: Backends,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbHealthCheckType {
    Tcp,
    Http,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbHealthCheck {
    #[serde(rename = "type")]
    pub kind: LbHealthCheckType,
    pub path: String,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub rise: u32,
    pub fall: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    pub certificate_file: Option<String>,
    pub key_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchAction {
    Switch,
    Boot,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    pub canary: Vec<String>,
    pub max_unavailable: u32,
    pub health_gate_timeout_seconds: u32,
    /// How long the deployer waits for a drained node's open connections
    /// to finish before switching it (absent in manifests rendered before
    /// drains: the default).
    #[serde(default = "default_drain_timeout_seconds")]
    pub drain_timeout_seconds: u32,
    pub auto_revert: bool,
    pub switch_action: SwitchAction,
    /// Nodes in the order they are switched, one list per wave.
    pub waves: Vec<Vec<String>>,
}

fn default_drain_timeout_seconds() -> u32 {
    30
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreTopology {
    pub members: Vec<StoreMember>,
    pub cluster_token: String,
    pub client_port: u16,
    pub peer_port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreMember {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ZONE: &str = r#"{"ttl": 300,
        "soa": {"email": "hostmaster.example.test", "refresh": 3600, "retry": 600, "expire": 604800, "minimum": 60},
        "nameservers": [], "records": [], "ptrPatterns": []"#;

    #[test]
    fn a_zone_written_before_secondaries_existed_has_none() {
        let zone: Zone = serde_json::from_str(&format!("{ZONE}}}")).unwrap();
        assert!(zone.secondaries.is_empty());
        assert_eq!(zone.dnssec, Dnssec::default());
    }

    #[test]
    fn dnssec_parses_with_a_key_file_and_nothing_unknown() {
        let text =
            format!(r#"{ZONE}, "dnssec": {{"enable": true, "keyFile": "/run/keys/z.pem"}}}}"#);
        let zone: Zone = serde_json::from_str(&text).unwrap();
        assert!(zone.dnssec.enable);
        assert_eq!(zone.dnssec.key_file.as_deref(), Some("/run/keys/z.pem"));
        let unknown = format!(r#"{ZONE}, "dnssec": {{"enable": true, "nsec3": true}}}}"#);
        assert!(serde_json::from_str::<Zone>(&unknown).is_err());
    }

    #[test]
    fn secondaries_parse_with_port_53_by_default_and_nothing_unknown() {
        let text = format!(
            r#"{ZONE}, "secondaries": [{{"address": "2001:db8::53"}}, {{"address": "192.0.2.53", "port": 5353}}]}}"#
        );
        let zone: Zone = serde_json::from_str(&text).unwrap();
        assert_eq!(
            zone.secondaries,
            [
                Secondary {
                    address: "2001:db8::53".parse().unwrap(),
                    port: 53
                },
                Secondary {
                    address: "192.0.2.53".parse().unwrap(),
                    port: 5353
                },
            ]
        );
        let unknown =
            format!(r#"{ZONE}, "secondaries": [{{"address": "192.0.2.53", "tsig": "k"}}]}}"#);
        assert!(serde_json::from_str::<Zone>(&unknown).is_err());
        let bad = format!(r#"{ZONE}, "secondaries": [{{"address": "192.0.2.53:53"}}]}}"#);
        assert!(serde_json::from_str::<Zone>(&bad).is_err());
    }
}
