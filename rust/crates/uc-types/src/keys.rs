//! The store keyspace (ARCHITECTURE.md), versioned by prefix. Every daemon
//! builds keys here rather than formatting them inline.

pub const PREFIX: &str = "/uc/v1/";

pub fn manifest_current() -> String {
    format!("{PREFIX}manifest/current")
}

/// Revision `n` of the imported manifests, zero-padded so keys sort.
pub fn manifest_history(revision: u64) -> String {
    format!("{PREFIX}manifest/history/{revision:020}")
}

/// The deployer's current (or last) rollout.
pub fn rollout_current() -> String {
    format!("{PREFIX}rollouts/current")
}

/// `{storePath, generation, rollout}`: written by the deployer.
pub fn desired_system(node: &str) -> String {
    format!("{PREFIX}nodes/{node}/desired-system")
}

/// `{storePath, state, since, error}`: written by the node's nix-agent.
pub fn observed_system(node: &str) -> String {
    format!("{PREFIX}nodes/{node}/observed-system")
}

/// Leased key: the node is alive.
pub fn heartbeat(node: &str) -> String {
    format!("{PREFIX}nodes/{node}/heartbeat")
}

pub fn services_prefix() -> String {
    format!("{PREFIX}services/")
}

/// A DNS zone as declared (`manifest.dns.zones.<zone>`), for uc-dns.
pub fn dns_zone(zone: &str) -> String {
    format!("{PREFIX}dns/zones/{zone}")
}

pub fn dns_zones_prefix() -> String {
    format!("{PREFIX}dns/zones/")
}

/// What the uc-dns on `node` serves now (`DnsServerStatus`): written by that
/// uc-dns only, on its lease, so the key disappears with it.
pub fn dns_server_status(node: &str) -> String {
    format!("{PREFIX}dns/status/{node}")
}

/// Every uc-dns' status (`dns_server_status`).
pub fn dns_status_prefix() -> String {
    format!("{PREFIX}dns/status/")
}

/// An LB listener as declared (`manifest.lb.listeners.<name>`), for uc-lb.
pub fn lb_listener(name: &str) -> String {
    format!("{PREFIX}lb/listeners/{name}")
}

pub fn lb_listeners_prefix() -> String {
    format!("{PREFIX}lb/listeners/")
}

/// One uc-lb's view of one listener (`{node, listener, serving, error,
/// backends: [{address, state}]}`): written by the uc-lb on `node` only, on
/// its lease.
pub fn lb_listener_status(node: &str, listener: &str) -> String {
    format!("{PREFIX}lb/status/{node}/{listener}")
}

/// Who holds the virtual IP `address` (the holder's node name), on the
/// holder's lease: created only if absent, so one uc-lb holds it at a time.
pub fn lb_vip(address: std::net::IpAddr) -> String {
    format!("{PREFIX}lb/vips/{address}")
}

/// Every uc-lb's listener statuses (`lb_listener_status`).
pub fn lb_status_prefix() -> String {
    format!("{PREFIX}lb/status/")
}

/// The statuses written by the uc-lb on `node`.
pub fn lb_node_status_prefix(node: &str) -> String {
    format!("{PREFIX}lb/status/{node}/")
}

/// A service as declared (`manifest.services.<service>`), for the scheduler.
pub fn service_spec(service: &str) -> String {
    format!("{PREFIX}services/{service}/spec")
}

pub fn service_assignment(service: &str, id: &str) -> String {
    format!("{PREFIX}services/{service}/assignments/{id}")
}

pub fn instance_status(node: &str, id: &str) -> String {
    format!("{PREFIX}instances/{node}/{id}/status")
}

/// Slot `n` (0 ≤ n < placement.maxUnavailable) of a service's rolling
/// update: a node-agent holds one, on its lease, while it replaces a healthy
/// instance with a new spec (`{node, instance, since}`).
pub fn service_update_slot(service: &str, n: u32) -> String {
    format!("{PREFIX}services/{service}/updating/{n}")
}

pub fn service_update_slots_prefix(service: &str) -> String {
    format!("{PREFIX}services/{service}/updating/")
}

/// All assignments of a service (`<id>` below it).
pub fn service_assignments_prefix(service: &str) -> String {
    format!("{PREFIX}services/{service}/assignments/")
}

/// The name an instance of a service goes by on its node (`instance_status`):
/// `<service>-<assignment id>`.
pub fn instance_name(service: &str, id: &str) -> String {
    format!("{service}-{id}")
}

pub fn nodes_prefix() -> String {
    format!("{PREFIX}nodes/")
}

pub fn instances_prefix() -> String {
    format!("{PREFIX}instances/")
}

/// The statuses of one node's instances (`instance_status(node, ..)`).
pub fn node_instances_prefix(node: &str) -> String {
    format!("{PREFIX}instances/{node}/")
}

/// `{drain, reason, since}`: the node takes no new instances; with `drain`
/// the scheduler also moves its instances away. Written by `uc node
/// drain`/`cordon`, deleted by `uc node uncordon`.
pub fn node_cordon(node: &str) -> String {
    format!("{PREFIX}nodes/{node}/cordon")
}

/// `{drained, reason, since, rollout}` (`TrafficDrain`): the node is out of
/// traffic; uc-lb sends its instances no new connections and uc-dns leaves
/// its addresses out of `service` records. Written by the deployer before
/// it switches the node in a rollout, deleted once the node is healthy.
pub fn node_traffic(node: &str) -> String {
    format!("{PREFIX}nodes/{node}/traffic")
}

/// Leased key held by the active scheduler (`{holder, since}`).
pub fn scheduler_leader() -> String {
    format!("{PREFIX}scheduler/leader")
}

/// Why replicas of a service could not be placed; absent when all are.
/// Written only by the active scheduler.
pub fn scheduler_status(service: &str) -> String {
    format!("{PREFIX}scheduler/status/{service}")
}

pub fn scheduler_status_prefix() -> String {
    format!("{PREFIX}scheduler/status/")
}

/// `{id, facts, firstSeen, lastSeen}`: a machine that phoned home but
/// matches no declared node, kept for the operator. Written by the deployer.
pub fn pending_machine(id: &str) -> String {
    format!("{PREFIX}pending/{id}")
}

pub fn pending_prefix() -> String {
    format!("{PREFIX}pending/")
}

/// The identity model (`uc_types::iam`), one document per key, written by
/// uc-iam: `kind` is one of [`IAM_KINDS`].
pub fn iam_object(kind: &str, name: &str) -> String {
    format!("{PREFIX}iam/{kind}/{name}")
}

/// Every document of one kind of the identity model.
pub fn iam_kind_prefix(kind: &str) -> String {
    format!("{PREFIX}iam/{kind}/")
}

/// The kinds of document under `/uc/v1/iam/` that make up an `IamView`.
pub const IAM_KINDS: [&str; 6] = [
    "tenants",
    "users",
    "service-accounts",
    "groups",
    "roles",
    "bindings",
];

pub fn iam_prefix() -> String {
    format!("{PREFIX}iam/")
}

/// The public half of a token-signing key (`SigningKeyRecord`).
pub fn iam_signing_key(kid: &str) -> String {
    format!("{PREFIX}iam/signing-keys/{kid}")
}

pub fn iam_signing_keys_prefix() -> String {
    format!("{PREFIX}iam/signing-keys/")
}

/// A revoked token, by its `jti` (`Revocation`, on a lease).
pub fn iam_revoked_token(jti: &str) -> String {
    format!("{PREFIX}iam/revoked/tokens/{jti}")
}

/// A revoked credential: an API key id or `password-<user>` (`Revocation`).
pub fn iam_revoked_credential(id: &str) -> String {
    format!("{PREFIX}iam/revoked/credentials/{id}")
}

pub fn iam_revoked_prefix() -> String {
    format!("{PREFIX}iam/revoked/")
}

/// One audit record (`AuditRecord`), on a lease; `seq` orders records of
/// the same millisecond. Both zero-padded so keys sort by time.
pub fn iam_audit(at_ms: u64, seq: u32) -> String {
    format!("{PREFIX}iam/audit/{at_ms:016}-{seq:06}")
}

pub fn iam_audit_prefix() -> String {
    format!("{PREFIX}iam/audit/")
}

/// A key of the keyspace, parsed: what [`parse`] gives back, one variant per
/// key shape built above. Borrowed from the key string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key<'a> {
    ManifestCurrent,
    ManifestHistory { revision: u64 },
    RolloutCurrent,
    DesiredSystem { node: &'a str },
    ObservedSystem { node: &'a str },
    Heartbeat { node: &'a str },
    NodeCordon { node: &'a str },
    NodeTraffic { node: &'a str },
    ServiceSpec { service: &'a str },
    ServiceAssignment { service: &'a str, id: &'a str },
    ServiceUpdateSlot { service: &'a str, slot: u32 },
    InstanceStatus { node: &'a str, instance: &'a str },
    SchedulerLeader,
    SchedulerStatus { service: &'a str },
    DnsZone { zone: &'a str },
    DnsServerStatus { node: &'a str },
    LbListener { name: &'a str },
    LbListenerStatus { node: &'a str, listener: &'a str },
    LbVip { address: std::net::IpAddr },
    PendingMachine { id: &'a str },
    IamObject { kind: &'a str, name: &'a str },
    IamSigningKey { kid: &'a str },
    IamRevokedToken { jti: &'a str },
    IamRevokedCredential { id: &'a str },
    IamAudit { at_ms: u64, seq: u32 },
}

/// Which key `key` is, or `None` for a key outside the keyspace (another
/// prefix, an unknown shape, an empty name or a malformed number).
pub fn parse(key: &str) -> Option<Key<'_>> {
    let rest = key.strip_prefix(PREFIX)?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.iter().any(|part| part.is_empty()) {
        return None;
    }
    Some(match parts[..] {
        ["manifest", "current"] => Key::ManifestCurrent,
        ["manifest", "history", revision] => Key::ManifestHistory {
            revision: revision.parse().ok()?,
        },
        ["rollouts", "current"] => Key::RolloutCurrent,
        ["nodes", node, "desired-system"] => Key::DesiredSystem { node },
        ["nodes", node, "observed-system"] => Key::ObservedSystem { node },
        ["nodes", node, "heartbeat"] => Key::Heartbeat { node },
        ["nodes", node, "cordon"] => Key::NodeCordon { node },
        ["nodes", node, "traffic"] => Key::NodeTraffic { node },
        ["services", service, "spec"] => Key::ServiceSpec { service },
        ["services", service, "assignments", id] => Key::ServiceAssignment { service, id },
        ["services", service, "updating", slot] => Key::ServiceUpdateSlot {
            service,
            slot: slot.parse().ok()?,
        },
        ["instances", node, instance, "status"] => Key::InstanceStatus { node, instance },
        ["scheduler", "leader"] => Key::SchedulerLeader,
        ["scheduler", "status", service] => Key::SchedulerStatus { service },
        ["dns", "zones", zone] => Key::DnsZone { zone },
        ["dns", "status", node] => Key::DnsServerStatus { node },
        ["lb", "listeners", name] => Key::LbListener { name },
        ["lb", "status", node, listener] => Key::LbListenerStatus { node, listener },
        ["lb", "vips", address] => Key::LbVip {
            address: address.parse().ok()?,
        },
        ["pending", id] => Key::PendingMachine { id },
        ["iam", "signing-keys", kid] => Key::IamSigningKey { kid },
        ["iam", "revoked", "tokens", jti] => Key::IamRevokedToken { jti },
        ["iam", "revoked", "credentials", id] => Key::IamRevokedCredential { id },
        ["iam", "audit", entry] => {
            let (at_ms, seq) = entry.split_once('-')?;
            Key::IamAudit {
                at_ms: at_ms.parse().ok()?,
                seq: seq.parse().ok()?,
            }
        }
        ["iam", kind, name] if IAM_KINDS.contains(&kind) => Key::IamObject { kind, name },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_key_parses_back() {
        let table = [
            (manifest_current(), Key::ManifestCurrent),
            (manifest_history(42), Key::ManifestHistory { revision: 42 }),
            (rollout_current(), Key::RolloutCurrent),
            (desired_system("cp1"), Key::DesiredSystem { node: "cp1" }),
            (observed_system("cp1"), Key::ObservedSystem { node: "cp1" }),
            (heartbeat("cp1"), Key::Heartbeat { node: "cp1" }),
            (node_cordon("w1"), Key::NodeCordon { node: "w1" }),
            (node_traffic("w1"), Key::NodeTraffic { node: "w1" }),
            (service_spec("web"), Key::ServiceSpec { service: "web" }),
            (
                service_assignment("web", "3"),
                Key::ServiceAssignment {
                    service: "web",
                    id: "3",
                },
            ),
            (
                service_update_slot("web", 1),
                Key::ServiceUpdateSlot {
                    service: "web",
                    slot: 1,
                },
            ),
            (
                instance_status("w1", "web-3"),
                Key::InstanceStatus {
                    node: "w1",
                    instance: "web-3",
                },
            ),
            (scheduler_leader(), Key::SchedulerLeader),
            (
                scheduler_status("web"),
                Key::SchedulerStatus { service: "web" },
            ),
            (
                dns_zone("example.org"),
                Key::DnsZone {
                    zone: "example.org",
                },
            ),
            (
                dns_server_status("ns1"),
                Key::DnsServerStatus { node: "ns1" },
            ),
            (lb_listener("http"), Key::LbListener { name: "http" }),
            (
                lb_listener_status("edge1", "http"),
                Key::LbListenerStatus {
                    node: "edge1",
                    listener: "http",
                },
            ),
            (
                lb_vip("10.0.0.100".parse().unwrap()),
                Key::LbVip {
                    address: "10.0.0.100".parse().unwrap(),
                },
            ),
            (
                lb_vip("2001:db8::100".parse().unwrap()),
                Key::LbVip {
                    address: "2001:db8::100".parse().unwrap(),
                },
            ),
            (
                pending_machine("52-54-00-12-34-56"),
                Key::PendingMachine {
                    id: "52-54-00-12-34-56",
                },
            ),
            (
                iam_object("roles", "viewer"),
                Key::IamObject {
                    kind: "roles",
                    name: "viewer",
                },
            ),
            (
                iam_object("service-accounts", "ci"),
                Key::IamObject {
                    kind: "service-accounts",
                    name: "ci",
                },
            ),
            (iam_signing_key("k2"), Key::IamSigningKey { kid: "k2" }),
            (iam_revoked_token("t1"), Key::IamRevokedToken { jti: "t1" }),
            (
                iam_revoked_credential("ak1"),
                Key::IamRevokedCredential { id: "ak1" },
            ),
            (
                iam_audit(1_700_000_000_123, 7),
                Key::IamAudit {
                    at_ms: 1_700_000_000_123,
                    seq: 7,
                },
            ),
        ];
        for (key, expected) in &table {
            assert_eq!(parse(key), Some(*expected), "{key}");
        }
    }

    #[test]
    fn a_node_instances_prefix_holds_its_instances_only() {
        let prefix = node_instances_prefix("w1");
        assert!(prefix.starts_with(&instances_prefix()));
        assert!(instance_status("w1", "web-3").starts_with(&prefix));
        assert!(!instance_status("w10", "web-3").starts_with(&prefix));
        assert_eq!(parse(&prefix), None);
    }

    #[test]
    fn an_lb_node_status_prefix_holds_its_statuses_only() {
        let prefix = lb_node_status_prefix("edge1");
        assert!(prefix.starts_with(&lb_status_prefix()));
        assert!(lb_listener_status("edge1", "http").starts_with(&prefix));
        assert!(!lb_listener_status("edge10", "http").starts_with(&prefix));
        assert_eq!(
            lb_listener_status("edge1", "http"),
            "/uc/v1/lb/status/edge1/http"
        );
        assert_eq!(parse(&prefix), None);
    }

    #[test]
    fn keys_outside_the_keyspace_do_not_parse() {
        for key in [
            "",
            "/uc/v1/",
            "/uc/v2/manifest/current",
            "/other/nodes/n1/heartbeat",
            "/uc/v1/nodes/n1",
            "/uc/v1/nodes//heartbeat",
            "/uc/v1/nodes/n1/heartbeat/extra",
            "/uc/v1/nodes/n1/unknown",
            "/uc/v1/manifest/history/latest",
            "/uc/v1/services/web/updating/x",
            "/uc/v1/instances/w1/web-3",
            "/uc/v1/lb/vips/not-an-address",
            "/uc/v1/iam/secrets/x",
            "/uc/v1/iam/audit/123",
            "/uc/v1/iam/revoked/other/x",
        ] {
            assert_eq!(parse(key), None, "{key:?}");
        }
    }

    #[test]
    fn keys_follow_the_architecture() {
        assert_eq!(desired_system("cp1"), "/uc/v1/nodes/cp1/desired-system");
        assert_eq!(observed_system("cp1"), "/uc/v1/nodes/cp1/observed-system");
        assert_eq!(
            service_assignment("web", "3"),
            "/uc/v1/services/web/assignments/3"
        );
        assert_eq!(
            instance_status("w1", "web-3"),
            "/uc/v1/instances/w1/web-3/status"
        );
        assert_eq!(instance_name("web", "3"), "web-3");
        assert_eq!(node_cordon("w1"), "/uc/v1/nodes/w1/cordon");
        assert_eq!(node_traffic("w1"), "/uc/v1/nodes/w1/traffic");
        assert_eq!(scheduler_leader(), "/uc/v1/scheduler/leader");
        assert_eq!(scheduler_status("web"), "/uc/v1/scheduler/status/web");
        assert_eq!(pending_machine("m1"), "/uc/v1/pending/m1");
        assert_eq!(
            lb_vip("10.0.0.100".parse().unwrap()),
            "/uc/v1/lb/vips/10.0.0.100"
        );
    }
}
