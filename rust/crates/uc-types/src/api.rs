//! The deployer's HTTP API: the bodies `uc` sends and the answers it and
//! the deployer's dashboard read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    InstanceStatus, LbListenerStatus, Listener, NodeCordon, PlacementStatus, PtrPattern, Record,
    Secondary,
};

/// Every API error's body: `{"error": "what went wrong and what to do"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiError {
    pub error: String,
}

/// `POST /api/v1/deploy`'s body, what `uc deploy` sends: a rendered
/// manifest (checked by the deployer, schemaVersion first) and the systems
/// built for its nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployRequest {
    pub manifest: serde_json::Value,
    /// Node to its NixOS system store path; nodes left out keep their system.
    pub systems: BTreeMap<String, String>,
}

/// `POST /api/v1/nodes/<node>/<action>`'s body (optional: without one, or
/// with one that does not parse, there is no reason).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeActionRequest {
    /// Kept in the cordon, for whoever looks at the node next.
    pub reason: Option<String>,
}

/// `POST /api/v1/nodes/<node>/<action>`'s answer: what was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeActionAnswer {
    pub node: String,
    /// `cordon`, `drain` or `uncordon`.
    pub action: String,
}

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

/// `GET /api/v1/lb`: every load-balancer listener, declared or still
/// reported, with what each LB node's uc-lb reports of it. What `uc lb`
/// and the dashboard read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbView {
    /// Listener name (`manifest.lb.listeners.<name>`) to its state.
    pub listeners: BTreeMap<String, LbListenerView>,
    /// Nodes the deployer has taken out of traffic for a rollout
    /// (`/uc/v1/nodes/<node>/traffic`, drained): uc-lb drains their
    /// instances from every listener.
    pub drained_nodes: BTreeMap<String, crate::TrafficDrain>,
}

/// One listener of an [`LbView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbListenerView {
    /// As declared (`/uc/v1/lb/listeners/<name>`); `null` when a uc-lb
    /// still reports a listener that is no longer declared.
    pub declared: Option<Listener>,
    /// LB node to its uc-lb's report (`/uc/v1/lb/status/<node>/<name>`). A
    /// declared node missing here runs no uc-lb (the report lives on the
    /// uc-lb's lease) or has not reported yet.
    pub reports: BTreeMap<String, LbListenerStatus>,
    /// LB node to why its report could not be read.
    pub unreadable: BTreeMap<String, String>,
}

/// `GET /api/v1/dns`: every zone declared in the store
/// (`/uc/v1/dns/zones/<apex>`) and the uc-dns servers that serve it. What
/// `uc dns` and the dashboard read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsView {
    /// Zone apex to its summary.
    pub zones: BTreeMap<String, DnsZoneView>,
}

/// One zone of a [`DnsView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsZoneView {
    /// The store revision of the zone's declaration. Each uc-dns' SOA
    /// serial is this revision or a later one: a change of what a service
    /// record answers, or a uc-dns restart, moves it (docs/dns.md).
    pub revision: i64,
    /// Records declared (a `service` record counts once).
    pub records: usize,
    pub ptr_patterns: usize,
    pub nameservers: Vec<String>,
    pub secondaries: Vec<Secondary>,
    /// The nodes the deployed manifest has serving this zone (their
    /// `daemons.dns.zones`); empty for a zone outside the manifest.
    pub servers: Vec<DnsServerView>,
    /// Why the declaration could not be read (uc-dns then answers from its
    /// last good version); the counts above are zero.
    pub error: Option<String>,
}

impl DnsZoneView {
    /// Its secondaries as `address:port`, as `uc dns` and the dashboard
    /// show them.
    pub fn secondaries_text(&self) -> String {
        let all: Vec<String> = self
            .secondaries
            .iter()
            .map(|s| std::net::SocketAddr::new(s.address, s.port).to_string())
            .collect();
        all.join(", ")
    }

    /// Its servers as `node on dns-address (health: http://…/health)`, or
    /// why there are none, as `uc dns` and the dashboard show them.
    pub fn servers_text(&self) -> String {
        if self.servers.is_empty() {
            return "no uc-dns in the deployed manifest".to_owned();
        }
        let all: Vec<String> = self
            .servers
            .iter()
            .map(|s| {
                let listen: Vec<String> = s.listen.iter().map(|a| a.to_string()).collect();
                let health = format!("http://{}/health", s.http_listen);
                format!("{} on {} (health: {health})", s.node, listen.join(", "))
            })
            .collect();
        all.join("; ")
    }

    /// What each server reports serving: `node: serial 12, ok` or `node:
    /// no report`, as `uc dns` and the dashboard show it.
    pub fn serving_text(&self) -> String {
        let all: Vec<String> = self
            .servers
            .iter()
            .map(|s| match &s.report {
                Some(report) => format!("{}: {}", s.node, report.text()),
                None => format!("{}: no report", s.node),
            })
            .collect();
        all.join("; ")
    }
}

/// A uc-dns server of a zone, as the manifest renders it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsServerView {
    pub node: String,
    /// Where it answers DNS.
    pub listen: Vec<std::net::SocketAddr>,
    /// Where its `/health` and `/metrics` are.
    pub http_listen: std::net::SocketAddr,
    /// What it reports serving (`/uc/v1/dns/status/<node>`); `None`: no
    /// report (not running, not started with its node, or its store
    /// connection is down long enough for its lease to expire).
    #[serde(default)]
    pub report: Option<DnsServerReport>,
}

/// A uc-dns' report ([`crate::DnsServerStatus`]) as it concerns one zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsServerReport {
    /// `ok`, `degraded`, `starting`, or `unreadable` (the report does not
    /// parse; `lastError` says why).
    pub health: String,
    /// The SOA serial it answers for the zone; `None`: it does not serve it.
    pub serial: Option<u32>,
    pub signed: bool,
    pub store_lag: i64,
    pub last_error: Option<String>,
}

impl DnsServerReport {
    /// In words, as `uc dns` and the dashboard show it: `serial 12
    /// (signed), ok`, `not serving this zone, starting`, `…, degraded
    /// (last error: <error>)`.
    pub fn text(&self) -> String {
        let serving = match self.serial {
            Some(serial) if self.signed => format!("serial {serial} (signed)"),
            Some(serial) => format!("serial {serial}"),
            None => "not serving this zone".to_owned(),
        };
        let mut text = format!("{serving}, {}", self.health);
        if self.store_lag > 0 {
            text.push_str(&format!(", {} revisions behind the store", self.store_lag));
        }
        if let Some(error) = &self.last_error {
            text.push_str(&format!(" (last error: {error})"));
        }
        text
    }
}

/// `GET /api/v1/dns/zones/<apex>`: a zone's declared records. What `uc dns
/// records` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsZoneRecords {
    pub apex: String,
    /// As in [`DnsZoneView::revision`].
    pub revision: i64,
    pub records: Vec<Record>,
    pub ptr_patterns: Vec<PtrPattern>,
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

    #[test]
    fn lb_and_dns_views_json_is_the_contract() {
        let status = LbListenerStatus {
            node: "edge1".into(),
            listener: "www".into(),
            protocol: Some(crate::ListenerProtocol::Http),
            address: Some("10.0.0.9:80".parse().expect("address")),
            serving: true,
            error: None,
            backends: vec![crate::LbBackendStatus {
                address: "10.0.0.1:8080".parse().expect("address"),
                state: crate::LbBackendState::Down,
                connections: None,
            }],
            vip: None,
        };
        let lb = LbView {
            listeners: BTreeMap::from([(
                "www".to_owned(),
                LbListenerView {
                    declared: None,
                    reports: BTreeMap::from([("edge1".to_owned(), status)]),
                    unreadable: BTreeMap::from([("edge2".to_owned(), "bad".to_owned())]),
                },
            )]),
            drained_nodes: BTreeMap::from([(
                "w1".to_owned(),
                crate::TrafficDrain {
                    drained: true,
                    reason: "rollout 7".into(),
                    since: 9,
                    rollout: Some(7),
                    serving: Vec::new(),
                },
            )]),
        };
        let json = serde_json::to_value(&lb).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({"listeners": {"www": {"declared": null,
                "reports": {"edge1": {"node": "edge1", "listener": "www", "protocol": "http",
                    "address": "10.0.0.9:80", "serving": true, "error": null,
                    "backends": [{"address": "10.0.0.1:8080", "state": "down"}]}},
                "unreadable": {"edge2": "bad"}}},
                "drainedNodes": {"w1": {"drained": true, "reason": "rollout 7", "since": 9,
                    "rollout": 7}}})
        );
        assert_eq!(serde_json::from_value::<LbView>(json).expect("parse"), lb);

        let dns = DnsView {
            zones: BTreeMap::from([(
                "ha.test".to_owned(),
                DnsZoneView {
                    revision: 12,
                    records: 3,
                    ptr_patterns: 0,
                    nameservers: vec!["ns1.ha.test.".into()],
                    secondaries: vec![Secondary {
                        address: [10, 0, 0, 2].into(),
                        port: 53,
                    }],
                    servers: vec![
                        DnsServerView {
                            node: "edge1".into(),
                            listen: vec!["10.0.0.9:53".parse().expect("address")],
                            http_listen: "10.0.0.9:9153".parse().expect("address"),
                            report: Some(DnsServerReport {
                                health: "degraded".into(),
                                serial: Some(14),
                                signed: true,
                                store_lag: 2,
                                last_error: Some("unreachable".into()),
                            }),
                        },
                        DnsServerView {
                            node: "edge2".into(),
                            listen: vec!["10.0.0.8:53".parse().expect("address")],
                            http_listen: "10.0.0.8:9153".parse().expect("address"),
                            report: None,
                        },
                    ],
                    error: None,
                },
            )]),
        };
        let json = serde_json::to_value(&dns).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({"zones": {"ha.test": {"revision": 12, "records": 3,
                "ptrPatterns": 0, "nameservers": ["ns1.ha.test."],
                "secondaries": [{"address": "10.0.0.2", "port": 53}],
                "servers": [{"node": "edge1", "listen": ["10.0.0.9:53"],
                    "httpListen": "10.0.0.9:9153", "report": {"health": "degraded",
                        "serial": 14, "signed": true, "storeLag": 2,
                        "lastError": "unreachable"}},
                    {"node": "edge2", "listen": ["10.0.0.8:53"],
                    "httpListen": "10.0.0.8:9153", "report": null}],
                "error": null}}})
        );
        let zone = &dns.zones["ha.test"];
        assert_eq!(zone.secondaries_text(), "10.0.0.2:53");
        assert_eq!(
            zone.servers_text(),
            "edge1 on 10.0.0.9:53 (health: http://10.0.0.9:9153/health); \
             edge2 on 10.0.0.8:53 (health: http://10.0.0.8:9153/health)"
        );
        assert_eq!(
            zone.serving_text(),
            "edge1: serial 14 (signed), degraded, 2 revisions behind the store \
             (last error: unreachable); edge2: no report"
        );
        let not_served = DnsServerReport {
            health: "starting".into(),
            serial: None,
            signed: false,
            store_lag: 0,
            last_error: None,
        };
        assert_eq!(not_served.text(), "not serving this zone, starting");
        assert_eq!(serde_json::from_value::<DnsView>(json).expect("parse"), dns);
    }

    #[test]
    fn request_and_answer_bodies_are_the_contract() {
        let deploy = DeployRequest {
            manifest: serde_json::json!({"schemaVersion": 1}),
            systems: BTreeMap::from([("w1".to_owned(), "/nix/store/x-system".to_owned())]),
        };
        assert_eq!(
            serde_json::to_value(&deploy).expect("serialise"),
            serde_json::json!({"manifest": {"schemaVersion": 1},
                "systems": {"w1": "/nix/store/x-system"}})
        );
        let request = NodeActionRequest {
            reason: Some("disk".into()),
        };
        assert_eq!(
            serde_json::to_value(&request).expect("serialise"),
            serde_json::json!({"reason": "disk"})
        );
        let answer = NodeActionAnswer {
            node: "w1".into(),
            action: "drain".into(),
        };
        assert_eq!(
            serde_json::to_value(&answer).expect("serialise"),
            serde_json::json!({"node": "w1", "action": "drain"})
        );
        let error = ApiError {
            error: "no rollout yet".into(),
        };
        assert_eq!(
            serde_json::to_value(&error).expect("serialise"),
            serde_json::json!({"error": "no rollout yet"})
        );
    }
}
