//! Placement: which node runs each instance of each service. Pure and
//! deterministic — the same cluster gives the same plan — so that the
//! daemon around it only reads the store, calls `place` and writes the
//! difference.
//!
//! The rules, in order:
//! 1. An instance stays where it is while its node exists, satisfies the
//!    service's constraints and is alive or only briefly silent (`Suspect`),
//!    cordoned or not. An unrelated change therefore moves nothing.
//! 2. Instances on a `Lost` node move; so do instances on a node that no
//!    longer satisfies the constraints (or left the manifest), and a second
//!    instance on one node of an anti-affine service.
//! 3. Instances on a draining node move, at most `maxUnavailable` of a
//!    service at a time: a move is allowed only while fewer than
//!    `maxUnavailable` replicas are unavailable (unplaced, on a node that is
//!    not alive, or not yet reported healthy).
//! 4. Scaling down removes instances on lost, then draining, nodes first,
//!    then the highest ids.
//! 5. A replica to place goes to the least-loaded node that passes every
//!    constraint (fewest instances of the same service, then the lowest
//!    CPU/memory use in thousandths of its capacity, then the fewest
//!    instances, then the node name). A replica no node accepts is reported
//!    with, for every node, each constraint that node failed.
//!
//! Services are handled in name order, and everything that stays is
//! counted before anything is placed, so capacity goes first to what runs.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use uc_types::{Assignment, Capacity, PlacementStatus, Role, Service};

/// Whether a node is alive, as the daemon judges from its heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Heartbeat present.
    Alive,
    /// Heartbeat gone for less than the grace period: its instances stay,
    /// nothing new goes there.
    Suspect,
    /// Heartbeat gone for longer than the grace period: its instances move.
    Lost,
}

/// The `/uc/v1/nodes/<node>/cordon` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cordon {
    #[default]
    None,
    /// No new instances.
    Cordoned,
    /// No new instances, and the existing ones move away.
    Draining,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub roles: Vec<Role>,
    pub labels: BTreeMap<String, String>,
    pub capacity: Capacity,
    pub liveness: Liveness,
    pub cordon: Cordon,
}

/// An instance as assigned now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub node: String,
    /// Its node-agent reports it healthy.
    pub healthy: bool,
}

/// Everything placement looks at.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub nodes: BTreeMap<String, NodeInfo>,
    pub services: BTreeMap<String, Service>,
    /// Service to instance id to where it runs now.
    pub current: BTreeMap<String, BTreeMap<String, Current>>,
}

/// The assignments every service should have, and why some could not be made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Service to instance id to assignment; services and ids absent here
    /// have no assignment.
    pub assignments: BTreeMap<String, BTreeMap<String, Assignment>>,
    /// Only services with an unplaced replica or a stuck instance.
    pub status: BTreeMap<String, PlacementStatus>,
}

/// Computes the plan for `cluster`.
pub fn place(cluster: &Cluster) -> Plan {
    let empty = BTreeMap::new();
    let mut usage: BTreeMap<&str, Usage> = cluster
        .nodes
        .keys()
        .map(|n| (n.as_str(), Usage::default()))
        .collect();

    // Pass 1: what stays, and what has to be placed.
    let mut pending: BTreeMap<&str, Pending> = BTreeMap::new();
    for (name, spec) in &cluster.services {
        let current = cluster.current.get(name).unwrap_or(&empty);
        let todo = keep(cluster, name, spec, current, &mut usage);
        pending.insert(name, todo);
    }

    // Pass 2: place, service by service.
    let mut plan = Plan::default();
    for (name, spec) in &cluster.services {
        let Some(todo) = pending.remove(name.as_str()) else {
            continue;
        };
        let mut placed: BTreeMap<String, String> = todo.kept;
        let mut unplaced = 0u32;
        let mut stuck = Vec::new();
        let mut reasons = BTreeMap::new();
        for (id, movable) in todo.to_place {
            match best_node(cluster, name, spec, &usage) {
                Ok(node) => {
                    add(&mut usage, node, name, &id, spec);
                    placed.insert(id, node.to_owned());
                }
                Err(why) => {
                    if reasons.is_empty() {
                        reasons = why;
                    }
                    match movable {
                        Some(old) => {
                            add(&mut usage, old, name, &id, spec);
                            placed.insert(id.clone(), old.to_owned());
                            stuck.push(id);
                        }
                        None => unplaced += 1,
                    }
                }
            }
        }
        let ports: BTreeMap<String, u16> = spec
            .ports
            .iter()
            .map(|(port, p)| (port.clone(), p.port))
            .collect();
        if unplaced > 0 || !stuck.is_empty() {
            plan.status.insert(
                name.clone(),
                PlacementStatus {
                    replicas: spec.replicas,
                    placed: u32::try_from(placed.len()).unwrap_or(u32::MAX),
                    unplaced,
                    stuck,
                    reasons,
                },
            );
        }
        plan.assignments.insert(
            name.clone(),
            placed
                .into_iter()
                .map(|(id, node)| {
                    let assignment = Assignment {
                        node,
                        ports: ports.clone(),
                    };
                    (id, assignment)
                })
                .collect(),
        );
    }
    plan
}

/// What pass 1 leaves for pass 2: instances kept in place, and ids to
/// place, each with the node it may stay on if no other fits.
struct Pending<'a> {
    kept: BTreeMap<String, String>,
    to_place: Vec<(String, Option<&'a str>)>,
}

/// Why an existing instance is where it is, in the order instances are kept
/// when there are more than `replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Standing {
    Fine,
    Draining,
    Lost,
    Invalid,
}

fn keep<'a>(
    cluster: &'a Cluster,
    service: &str,
    spec: &Service,
    current: &'a BTreeMap<String, Current>,
    usage: &mut BTreeMap<&'a str, Usage>,
) -> Pending<'a> {
    let mut ids: Vec<(&String, &Current)> = current.iter().collect();
    ids.sort_by(|a, b| id_order(a.0, b.0));

    let mut seen_on: BTreeSet<&str> = BTreeSet::new();
    let mut ranked: Vec<(Standing, &String, &Current)> = Vec::new();
    for (id, cur) in ids {
        let standing = match cluster.nodes.get(&cur.node) {
            None => Standing::Invalid,
            Some(node) if !static_failures(spec, node).is_empty() => Standing::Invalid,
            Some(_) if spec.placement.anti_affinity && seen_on.contains(cur.node.as_str()) => {
                Standing::Invalid
            }
            Some(node) => {
                seen_on.insert(cur.node.as_str());
                match (node.liveness, node.cordon) {
                    (Liveness::Lost, _) => Standing::Lost,
                    (_, Cordon::Draining) => Standing::Draining,
                    _ => Standing::Fine,
                }
            }
        };
        ranked.push((standing, id, cur));
    }
    // Stable sort: within a standing, id order.
    ranked.sort_by_key(|(standing, _, _)| *standing);
    let replicas = usize::try_from(spec.replicas).unwrap_or(usize::MAX);
    ranked.truncate(replicas);

    let available = ranked
        .iter()
        .filter(|(standing, _, cur)| {
            matches!(standing, Standing::Fine | Standing::Draining)
                && cur.healthy
                && cluster
                    .nodes
                    .get(&cur.node)
                    .is_some_and(|n| n.liveness == Liveness::Alive)
        })
        .count();
    let max_unavailable = usize::try_from(spec.placement.max_unavailable.max(1)).unwrap_or(1);
    let mut drain_budget = max_unavailable.saturating_sub(replicas.saturating_sub(available));

    let mut kept = BTreeMap::new();
    let mut required = Vec::new();
    let mut lost = Vec::new();
    let mut draining = Vec::new();
    for (standing, id, cur) in &ranked {
        match standing {
            Standing::Fine => {
                add(usage, &cur.node, service, id, spec);
                kept.insert((*id).clone(), cur.node.clone());
            }
            Standing::Draining if drain_budget > 0 => {
                drain_budget -= 1;
                draining.push(((*id).clone(), Some(cur.node.as_str())));
            }
            Standing::Draining => {
                add(usage, &cur.node, service, id, spec);
                kept.insert((*id).clone(), cur.node.clone());
            }
            Standing::Lost => lost.push(((*id).clone(), Some(cur.node.as_str()))),
            Standing::Invalid => required.push(((*id).clone(), None)),
        }
    }
    let used: BTreeSet<&str> = ranked.iter().map(|(_, id, _)| id.as_str()).collect();
    let mut fresh = Vec::new();
    let mut next = 0u64;
    for _ in ranked.len()..replicas {
        while used.contains(next.to_string().as_str()) {
            next += 1;
        }
        fresh.push((next.to_string(), None));
        next += 1;
    }

    let mut to_place = required;
    to_place.extend(lost);
    to_place.extend(fresh);
    to_place.extend(draining);
    Pending { kept, to_place }
}

/// Numeric ids in numeric order, before any other id in string order.
fn id_order(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// What the instances placed so far take from one node.
#[derive(Debug, Default)]
struct Usage {
    cpu_millis: u64,
    memory_mib: u64,
    instances: u64,
    /// Service to how many of its instances.
    services: BTreeMap<String, u64>,
    /// `tcp/8080` to the instance holding it.
    ports: BTreeMap<String, String>,
}

fn port_key(p: &uc_types::PortSpec) -> String {
    let protocol = match p.protocol {
        uc_types::Transport::Tcp => "tcp",
        uc_types::Transport::Udp => "udp",
    };
    format!("{protocol}/{}", p.port)
}

fn add<'a>(
    usage: &mut BTreeMap<&'a str, Usage>,
    node: &'a str,
    service: &str,
    id: &str,
    spec: &Service,
) {
    let u = usage.entry(node).or_default();
    u.cpu_millis += spec.resources.cpu_millis;
    u.memory_mib += spec.resources.memory_mib;
    u.instances += 1;
    *u.services.entry(service.to_owned()).or_default() += 1;
    for p in spec.ports.values() {
        u.ports
            .insert(port_key(p), uc_types::keys::instance_name(service, id));
    }
}

/// Constraints that hold whatever else runs: roles, labels, and capacity
/// for one instance.
fn static_failures(spec: &Service, node: &NodeInfo) -> Vec<String> {
    let mut failures = Vec::new();
    let wanted = &spec.placement.roles;
    if !wanted.is_empty() && !wanted.iter().any(|r| node.roles.contains(r)) {
        failures.push(format!(
            "role: needs one of [{}], has [{}]",
            role_list(wanted),
            role_list(&node.roles)
        ));
    }
    for (key, value) in &spec.placement.labels {
        match node.labels.get(key) {
            None => failures.push(format!("label: needs {key}={value}, has no {key}")),
            Some(has) if has != value => {
                failures.push(format!("label: needs {key}={value}, has {key}={has}"))
            }
            Some(_) => {}
        }
    }
    let want = spec.resources;
    if want.cpu_millis > node.capacity.cpu_millis {
        failures.push(format!(
            "cpu: needs {}m per instance, capacity {}m",
            want.cpu_millis, node.capacity.cpu_millis
        ));
    }
    if want.memory_mib > node.capacity.memory_mib {
        failures.push(format!(
            "memory: needs {} MiB per instance, capacity {} MiB",
            want.memory_mib, node.capacity.memory_mib
        ));
    }
    failures
}

fn role_list(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every constraint `node` fails for one more instance of `service`;
/// empty when the node accepts it.
fn failures(
    service: &str,
    spec: &Service,
    node_name: &str,
    node: &NodeInfo,
    usage: &BTreeMap<&str, Usage>,
) -> Vec<String> {
    let mut failures = Vec::new();
    match node.liveness {
        Liveness::Alive => {}
        Liveness::Suspect => failures.push("alive: no heartbeat".to_owned()),
        Liveness::Lost => {
            failures.push("alive: no heartbeat for longer than the grace period".to_owned())
        }
    }
    match node.cordon {
        Cordon::None => {}
        Cordon::Cordoned => failures.push("cordoned".to_owned()),
        Cordon::Draining => failures.push("draining".to_owned()),
    }
    let static_ = static_failures(spec, node);
    let capacity_fits = !static_
        .iter()
        .any(|f| f.starts_with("cpu") || f.starts_with("memory"));
    failures.extend(static_);
    let empty = Usage::default();
    let used = usage.get(node_name).unwrap_or(&empty);
    if capacity_fits {
        let want = spec.resources;
        let free_cpu = node.capacity.cpu_millis.saturating_sub(used.cpu_millis);
        if want.cpu_millis > free_cpu {
            failures.push(format!(
                "cpu: needs {}m, {}m of {}m free",
                want.cpu_millis, free_cpu, node.capacity.cpu_millis
            ));
        }
        let free_mem = node.capacity.memory_mib.saturating_sub(used.memory_mib);
        if want.memory_mib > free_mem {
            failures.push(format!(
                "memory: needs {} MiB, {} of {} MiB free",
                want.memory_mib, free_mem, node.capacity.memory_mib
            ));
        }
    }
    if spec.placement.anti_affinity && used.services.get(service).copied().unwrap_or(0) > 0 {
        failures.push(format!(
            "antiAffinity: already runs an instance of {service}"
        ));
    }
    for p in spec.ports.values() {
        if let Some(holder) = used.ports.get(&port_key(p)) {
            failures.push(format!("port: {} already used by {holder}", port_key(p)));
        }
    }
    failures
}

/// Thousandths of `capacity` in use (a zero capacity counts as full).
fn permille(used: u64, capacity: u64) -> u64 {
    used.saturating_mul(1000)
        .checked_div(capacity)
        .unwrap_or(1000)
}

/// The node that takes one more instance, or each node's failed constraints.
fn best_node<'a>(
    cluster: &'a Cluster,
    service: &str,
    spec: &Service,
    usage: &BTreeMap<&str, Usage>,
) -> Result<&'a str, BTreeMap<String, Vec<String>>> {
    let mut best: Option<((u64, u64, u64), &'a str)> = None;
    let mut why = BTreeMap::new();
    let empty = Usage::default();
    for (name, node) in &cluster.nodes {
        let failed = failures(service, spec, name, node, usage);
        if !failed.is_empty() {
            why.insert(name.clone(), failed);
            continue;
        }
        let used = usage.get(name.as_str()).unwrap_or(&empty);
        let load = permille(used.cpu_millis, node.capacity.cpu_millis)
            .max(permille(used.memory_mib, node.capacity.memory_mib));
        let score = (
            used.services.get(service).copied().unwrap_or(0),
            load,
            used.instances,
        );
        // Nodes come in name order, so on a tie the first name wins.
        let better = match &best {
            None => true,
            Some((b, _)) => score < *b,
        };
        if better {
            best = Some((score, name.as_str()));
        }
    }
    match best {
        Some((_, name)) => Ok(name),
        None if cluster.nodes.is_empty() => Err(BTreeMap::from([(
            "*".to_owned(),
            vec!["the manifest has no nodes".to_owned()],
        )])),
        None => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uc_types::{Exec, Placement, PortSpec, Transport};

    fn service(replicas: u32) -> Service {
        Service {
            exec: Exec {
                package: None,
                command: vec!["/bin/true".into()],
            },
            replicas,
            placement: Placement {
                roles: vec![Role::Worker],
                labels: BTreeMap::new(),
                anti_affinity: true,
                max_unavailable: 1,
            },
            resources: Capacity {
                cpu_millis: 100,
                memory_mib: 128,
            },
            ports: BTreeMap::new(),
            health_check: None,
            environment: BTreeMap::new(),
            secret_files: BTreeMap::new(),
            dns: None,
            listeners: Vec::new(),
            eligible_nodes: Vec::new(),
        }
    }

    fn node() -> NodeInfo {
        NodeInfo {
            roles: vec![Role::Worker],
            labels: BTreeMap::new(),
            capacity: Capacity {
                cpu_millis: 1000,
                memory_mib: 1024,
            },
            liveness: Liveness::Alive,
            cordon: Cordon::None,
        }
    }

    fn cluster(nodes: &[&str], services: &[(&str, Service)]) -> Cluster {
        Cluster {
            nodes: nodes.iter().map(|n| (n.to_string(), node())).collect(),
            services: services
                .iter()
                .map(|(n, s)| (n.to_string(), s.clone()))
                .collect(),
            current: BTreeMap::new(),
        }
    }

    /// Service to id to node.
    fn nodes_of(plan: &Plan) -> BTreeMap<String, BTreeMap<String, String>> {
        plan.assignments
            .iter()
            .map(|(s, ids)| {
                let ids = ids
                    .iter()
                    .map(|(id, a)| (id.clone(), a.node.clone()))
                    .collect();
                (s.clone(), ids)
            })
            .collect()
    }

    fn of(plan: &Plan, service: &str) -> Vec<(String, String)> {
        nodes_of(plan)
            .remove(service)
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Feeds a plan back as the current state, every instance healthy.
    fn apply(cluster: &mut Cluster, plan: &Plan) {
        cluster.current = nodes_of(plan)
            .into_iter()
            .map(|(s, ids)| {
                let ids = ids
                    .into_iter()
                    .map(|(id, node)| {
                        (
                            id,
                            Current {
                                node,
                                healthy: true,
                            },
                        )
                    })
                    .collect();
                (s, ids)
            })
            .collect();
    }

    #[test]
    fn spreads_replicas_over_the_least_loaded_nodes_in_name_order() {
        let c = cluster(&["w1", "w2", "w3"], &[("web", service(3))]);
        let plan = place(&c);
        assert_eq!(
            of(&plan, "web"),
            pairs(&[("0", "w1"), ("1", "w2"), ("2", "w3")])
        );
        assert!(plan.status.is_empty());
        assert_eq!(place(&c), plan, "deterministic");
    }

    #[test]
    fn the_least_loaded_node_wins() {
        let mut big = service(1);
        big.resources.cpu_millis = 600;
        let mut c = cluster(
            &["w1", "w2", "w3"],
            &[("big", big), ("small", service(1)), ("web", service(1))],
        );
        let on = |node: &str| {
            BTreeMap::from([(
                "0".to_owned(),
                Current {
                    node: node.into(),
                    healthy: true,
                },
            )])
        };
        c.current.insert("big".into(), on("w1"));
        c.current.insert("small".into(), on("w2"));
        c.nodes.get_mut("w2").unwrap().capacity.cpu_millis = 200;
        // w1 is 60% busy, w2 50%, w3 idle.
        assert_eq!(of(&place(&c), "web"), pairs(&[("0", "w3")]));
        c.nodes.get_mut("w3").unwrap().cordon = Cordon::Cordoned;
        assert_eq!(of(&place(&c), "web"), pairs(&[("0", "w2")]));
    }

    #[test]
    fn without_anti_affinity_replicas_still_spread_before_stacking() {
        let mut svc = service(5);
        svc.placement.anti_affinity = false;
        let plan = place(&cluster(&["w1", "w2"], &[("web", svc)]));
        assert_eq!(
            of(&plan, "web"),
            pairs(&[
                ("0", "w1"),
                ("1", "w2"),
                ("2", "w1"),
                ("3", "w2"),
                ("4", "w1")
            ])
        );
    }

    #[test]
    fn roles_labels_and_capacity_select_nodes() {
        let mut c = cluster(&["cp1", "w1", "w2", "w3"], &[]);
        c.nodes.get_mut("cp1").unwrap().roles = vec![Role::ControlPlane];
        for (n, zone) in [("cp1", "a"), ("w1", "a"), ("w2", "b"), ("w3", "a")] {
            c.nodes
                .get_mut(n)
                .unwrap()
                .labels
                .insert("zone".into(), zone.into());
        }
        c.nodes.get_mut("w3").unwrap().capacity.memory_mib = 64;
        let mut svc = service(1);
        svc.placement.labels.insert("zone".into(), "a".into());
        c.services.insert("web".into(), svc);
        let plan = place(&c);
        assert_eq!(of(&plan, "web"), pairs(&[("0", "w1")]));
    }

    #[test]
    fn unplaceable_replicas_are_reported_with_each_nodes_failed_constraints() {
        let mut c = cluster(&["cp1", "w1", "w2"], &[]);
        c.nodes.get_mut("cp1").unwrap().roles = vec![Role::ControlPlane];
        c.nodes.get_mut("w2").unwrap().cordon = Cordon::Cordoned;
        let mut svc = service(2);
        svc.resources.cpu_millis = 800;
        c.services.insert("web".into(), svc);
        c.services.insert("aaa".into(), {
            let mut s = service(1);
            s.resources.cpu_millis = 300;
            s
        });
        let plan = place(&c);
        assert_eq!(of(&plan, "aaa"), pairs(&[("0", "w1")]));
        // web's first replica does not fit w1 (300m taken by aaa), nor any other.
        assert_eq!(of(&plan, "web"), pairs(&[]));
        let status = &plan.status["web"];
        assert_eq!((status.replicas, status.placed, status.unplaced), (2, 0, 2));
        assert_eq!(
            status.reasons["cp1"],
            ["role: needs one of [worker], has [control-plane]"]
        );
        assert_eq!(
            status.reasons["w1"],
            ["cpu: needs 800m, 700m of 1000m free"]
        );
        assert_eq!(status.reasons["w2"], ["cordoned"]);
    }

    #[test]
    fn anti_affinity_and_ports_are_reported() {
        let mut web = service(2);
        web.ports.insert(
            "http".into(),
            PortSpec {
                port: 8080,
                protocol: Transport::Tcp,
            },
        );
        let mut other = service(1);
        other.ports.insert(
            "p".into(),
            PortSpec {
                port: 8080,
                protocol: Transport::Tcp,
            },
        );
        let c = cluster(&["w1", "w2"], &[("api", other), ("web", web)]);
        let plan = place(&c);
        assert_eq!(of(&plan, "api"), pairs(&[("0", "w1")]));
        assert_eq!(of(&plan, "web"), pairs(&[("0", "w2")]));
        assert_eq!(
            plan.assignments["web"]["0"].ports,
            BTreeMap::from([("http".to_owned(), 8080)])
        );
        let status = &plan.status["web"];
        assert_eq!(status.unplaced, 1);
        assert_eq!(
            status.reasons["w1"],
            ["port: tcp/8080 already used by api-0"]
        );
        assert_eq!(
            status.reasons["w2"],
            [
                "antiAffinity: already runs an instance of web",
                "port: tcp/8080 already used by web-0"
            ]
        );
    }

    #[test]
    fn an_unrelated_change_moves_nothing() {
        let mut c = cluster(
            &["w1", "w2", "w3"],
            &[("web", service(2)), ("api", service(2))],
        );
        let first = place(&c);
        apply(&mut c, &first);
        assert_eq!(place(&c), first, "a second pass changes nothing");

        // A new node, a new service, another node's labels and a cordon elsewhere.
        c.nodes.insert("w0".into(), node());
        c.services.insert("db".into(), service(1));
        c.nodes
            .get_mut("w3")
            .unwrap()
            .labels
            .insert("disk".into(), "ssd".into());
        c.nodes.get_mut("w3").unwrap().cordon = Cordon::Cordoned;
        c.nodes.get_mut("w2").unwrap().liveness = Liveness::Suspect;
        let second = place(&c);
        for svc in ["web", "api"] {
            assert_eq!(of(&second, svc), of(&first, svc), "{svc} moved");
        }
        assert_eq!(of(&second, "db"), pairs(&[("0", "w0")]));
    }

    #[test]
    fn existing_assignments_are_kept_even_where_a_fresh_plan_would_differ() {
        let mut c = cluster(&["w1", "w2", "w3"], &[("web", service(2))]);
        c.current.insert(
            "web".into(),
            BTreeMap::from([
                (
                    "4".into(),
                    Current {
                        node: "w3".into(),
                        healthy: false,
                    },
                ),
                (
                    "7".into(),
                    Current {
                        node: "w2".into(),
                        healthy: true,
                    },
                ),
            ]),
        );
        let plan = place(&c);
        assert_eq!(of(&plan, "web"), pairs(&[("4", "w3"), ("7", "w2")]));
    }

    #[test]
    fn scaling_up_adds_the_lowest_free_ids_and_down_removes_the_highest() {
        let mut c = cluster(&["w1", "w2", "w3", "w4"], &[("web", service(2))]);
        let plan = place(&c);
        apply(&mut c, &plan);
        c.services.get_mut("web").unwrap().replicas = 4;
        let up = place(&c);
        assert_eq!(
            of(&up, "web"),
            pairs(&[("0", "w1"), ("1", "w2"), ("2", "w3"), ("3", "w4")])
        );
        apply(&mut c, &up);
        c.services.get_mut("web").unwrap().replicas = 2;
        assert_eq!(of(&place(&c), "web"), pairs(&[("0", "w1"), ("1", "w2")]));
    }

    #[test]
    fn scaling_down_drops_instances_on_lost_and_draining_nodes_first() {
        let mut c = cluster(&["w1", "w2", "w3"], &[("web", service(3))]);
        let plan = place(&c);
        apply(&mut c, &plan);
        c.nodes.get_mut("w1").unwrap().liveness = Liveness::Lost;
        c.nodes.get_mut("w2").unwrap().cordon = Cordon::Draining;
        c.services.get_mut("web").unwrap().replicas = 1;
        assert_eq!(of(&place(&c), "web"), pairs(&[("2", "w3")]));
    }

    #[test]
    fn suspect_nodes_keep_their_instances_lost_ones_lose_them() {
        let mut c = cluster(&["w1", "w2", "w3", "w4"], &[("web", service(3))]);
        let plan = place(&c);
        apply(&mut c, &plan);
        c.nodes.get_mut("w2").unwrap().liveness = Liveness::Suspect;
        assert_eq!(of(&place(&c), "web"), of(&plan, "web"));
        c.nodes.get_mut("w2").unwrap().liveness = Liveness::Lost;
        let moved = place(&c);
        assert_eq!(
            of(&moved, "web"),
            pairs(&[("0", "w1"), ("1", "w4"), ("2", "w3")])
        );
        assert!(moved.status.is_empty());
    }

    #[test]
    fn an_instance_on_a_lost_node_stays_when_no_other_node_fits() {
        let mut c = cluster(&["w1", "w2", "w3"], &[("web", service(3))]);
        let plan = place(&c);
        apply(&mut c, &plan);
        c.nodes.get_mut("w3").unwrap().liveness = Liveness::Lost;
        let stuck = place(&c);
        assert_eq!(of(&stuck, "web"), of(&plan, "web"));
        let status = &stuck.status["web"];
        assert_eq!(status.stuck, ["2"]);
        assert_eq!(status.unplaced, 0);
        assert_eq!(
            status.reasons["w3"],
            ["alive: no heartbeat for longer than the grace period"]
        );
        assert_eq!(
            status.reasons["w1"],
            ["antiAffinity: already runs an instance of web"]
        );
    }

    #[test]
    fn instances_on_nodes_that_no_longer_qualify_move() {
        let mut c = cluster(&["w1", "w2", "w3"], &[("web", service(2))]);
        let plan = place(&c);
        apply(&mut c, &plan);
        c.nodes.get_mut("w1").unwrap().roles = vec![Role::Edge];
        c.nodes.remove("w2");
        c.nodes.insert("w4".into(), node());
        assert_eq!(of(&place(&c), "web"), pairs(&[("0", "w3"), ("1", "w4")]));
    }

    #[test]
    fn a_duplicate_on_one_node_of_an_anti_affine_service_moves() {
        let mut c = cluster(&["w1", "w2"], &[("web", service(2))]);
        let on_w1 = Current {
            node: "w1".into(),
            healthy: true,
        };
        c.current.insert(
            "web".into(),
            BTreeMap::from([("0".into(), on_w1.clone()), ("1".into(), on_w1)]),
        );
        assert_eq!(of(&place(&c), "web"), pairs(&[("0", "w1"), ("1", "w2")]));
    }

    #[test]
    fn a_drain_moves_no_more_than_max_unavailable_at_a_time() {
        let mut c = cluster(&["w1", "w2", "w3", "w4", "w5"], &[]);
        let mut web = service(4);
        web.placement.anti_affinity = false;
        web.placement.max_unavailable = 1;
        c.services.insert("web".into(), web);
        // Four instances, all on w1.
        c.current.insert(
            "web".into(),
            (0..4)
                .map(|i| {
                    let cur = Current {
                        node: "w1".into(),
                        healthy: true,
                    };
                    (i.to_string(), cur)
                })
                .collect(),
        );
        c.nodes.get_mut("w1").unwrap().cordon = Cordon::Draining;

        let step1 = place(&c);
        assert_eq!(
            of(&step1, "web"),
            pairs(&[("0", "w2"), ("1", "w1"), ("2", "w1"), ("3", "w1")])
        );
        // The moved instance is not healthy yet: nothing else moves.
        apply(&mut c, &step1);
        c.current
            .get_mut("web")
            .unwrap()
            .get_mut("0")
            .unwrap()
            .healthy = false;
        assert_eq!(place(&c), step1);
        // Healthy again: the next one moves.
        c.current
            .get_mut("web")
            .unwrap()
            .get_mut("0")
            .unwrap()
            .healthy = true;
        let step2 = place(&c);
        assert_eq!(
            of(&step2, "web"),
            pairs(&[("0", "w2"), ("1", "w3"), ("2", "w1"), ("3", "w1")])
        );
        // An unhealthy instance elsewhere also uses up the budget.
        apply(&mut c, &step2);
        c.current
            .get_mut("web")
            .unwrap()
            .get_mut("0")
            .unwrap()
            .healthy = false;
        assert_eq!(place(&c), step2);
    }

    #[test]
    fn a_drain_with_a_larger_budget_moves_more_at_once() {
        let mut c = cluster(&["w1", "w2", "w3", "w4"], &[]);
        let mut web = service(3);
        web.placement.anti_affinity = false;
        web.placement.max_unavailable = 2;
        c.services.insert("web".into(), web);
        c.current.insert(
            "web".into(),
            (0..3)
                .map(|i| {
                    let cur = Current {
                        node: "w1".into(),
                        healthy: true,
                    };
                    (i.to_string(), cur)
                })
                .collect(),
        );
        c.nodes.get_mut("w1").unwrap().cordon = Cordon::Draining;
        assert_eq!(
            of(&place(&c), "web"),
            pairs(&[("0", "w2"), ("1", "w3"), ("2", "w1")])
        );
    }

    #[test]
    fn a_drain_that_cannot_move_an_instance_leaves_it_and_says_so() {
        let mut c = cluster(&["w1", "w2"], &[("web", service(2))]);
        let plan = place(&c);
        apply(&mut c, &plan);
        c.nodes.get_mut("w1").unwrap().cordon = Cordon::Draining;
        let drained = place(&c);
        assert_eq!(of(&drained, "web"), of(&plan, "web"));
        assert_eq!(drained.status["web"].stuck, ["0"]);
        assert_eq!(drained.status["web"].reasons["w1"], ["draining"]);
    }

    #[test]
    fn a_cordon_keeps_instances_but_takes_no_new_ones() {
        let mut c = cluster(&["w1", "w2", "w3"], &[("web", service(1))]);
        let plan = place(&c);
        apply(&mut c, &plan);
        c.nodes.get_mut("w1").unwrap().cordon = Cordon::Cordoned;
        c.services.get_mut("web").unwrap().replicas = 2;
        assert_eq!(of(&place(&c), "web"), pairs(&[("0", "w1"), ("1", "w2")]));
    }

    #[test]
    fn capacity_adds_up_across_services() {
        let mut c = cluster(&["w1"], &[]);
        let mut svc = service(1);
        svc.resources.memory_mib = 400;
        for name in ["a", "b", "c"] {
            c.services.insert(name.into(), svc.clone());
        }
        let plan = place(&c);
        assert_eq!(of(&plan, "a"), pairs(&[("0", "w1")]));
        assert_eq!(of(&plan, "b"), pairs(&[("0", "w1")]));
        assert_eq!(of(&plan, "c"), pairs(&[]));
        assert_eq!(
            plan.status["c"].reasons["w1"],
            ["memory: needs 400 MiB, 224 of 1024 MiB free"]
        );
    }

    #[test]
    fn a_removed_service_has_no_assignments() {
        let mut c = cluster(&["w1"], &[("web", service(1))]);
        let plan = place(&c);
        apply(&mut c, &plan);
        c.services.clear();
        assert!(place(&c).assignments.is_empty());
    }

    #[test]
    fn no_nodes_is_a_reason_too() {
        let plan = place(&cluster(&[], &[("web", service(1))]));
        assert_eq!(
            plan.status["web"].reasons["*"],
            ["the manifest has no nodes"]
        );
    }
}
