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

/// An LB listener as declared (`manifest.lb.listeners.<name>`), for uc-lb.
pub fn lb_listener(name: &str) -> String {
    format!("{PREFIX}lb/listeners/{name}")
}

pub fn lb_listeners_prefix() -> String {
    format!("{PREFIX}lb/listeners/")
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
