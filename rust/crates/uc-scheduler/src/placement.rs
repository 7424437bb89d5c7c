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
mod tests;
