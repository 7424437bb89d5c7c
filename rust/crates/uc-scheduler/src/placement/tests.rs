//! The placement rules of `super`, one table or scenario per rule.

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

/// `nodes`, w1 draining; web without anti-affinity, all `replicas` of it
/// healthy on w1, `max_unavailable` of them moved at a time.
fn draining_w1(nodes: &[&str], replicas: u32, max_unavailable: u32) -> Cluster {
    let mut c = cluster(nodes, &[]);
    let mut web = service(replicas);
    web.placement.anti_affinity = false;
    web.placement.max_unavailable = max_unavailable;
    c.services.insert("web".into(), web);
    c.current.insert(
        "web".into(),
        (0..replicas)
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
    c
}

/// Marks web's instance `id` healthy or not.
fn set_healthy(c: &mut Cluster, id: &str, healthy: bool) {
    c.current
        .get_mut("web")
        .unwrap()
        .get_mut(id)
        .unwrap()
        .healthy = healthy;
}

#[test]
fn a_drain_moves_no_more_than_max_unavailable_at_a_time() {
    // Four instances, all on w1.
    let mut c = draining_w1(&["w1", "w2", "w3", "w4", "w5"], 4, 1);

    let step1 = place(&c);
    assert_eq!(
        of(&step1, "web"),
        pairs(&[("0", "w2"), ("1", "w1"), ("2", "w1"), ("3", "w1")])
    );
    // The moved instance is not healthy yet: nothing else moves.
    apply(&mut c, &step1);
    set_healthy(&mut c, "0", false);
    assert_eq!(place(&c), step1);
    // Healthy again: the next one moves.
    set_healthy(&mut c, "0", true);
    let step2 = place(&c);
    assert_eq!(
        of(&step2, "web"),
        pairs(&[("0", "w2"), ("1", "w3"), ("2", "w1"), ("3", "w1")])
    );
    // An unhealthy instance elsewhere also uses up the budget.
    apply(&mut c, &step2);
    set_healthy(&mut c, "0", false);
    assert_eq!(place(&c), step2);
}

#[test]
fn a_drain_with_a_larger_budget_moves_more_at_once() {
    let c = draining_w1(&["w1", "w2", "w3", "w4"], 3, 2);
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
