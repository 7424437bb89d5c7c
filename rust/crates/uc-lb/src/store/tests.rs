#![allow(clippy::unwrap_used)]
use super::*;
use crate::balance::Policy;
use crate::health::Probe;

fn listener(extra: serde_json::Value) -> Vec<u8> {
    let mut base = serde_json::json!({
        "protocol": "http",
        "port": 8000,
        "address": "127.0.0.9",
        "nodes": ["edge1"],
        "balance": "least-connections",
        "backends": {"service": null, "servicePort": null, "endpoints": ["127.0.0.2:80", "127.0.0.1:80", "127.0.0.1:80"]},
        "healthCheck": {"type": "http", "path": "/ok", "intervalSeconds": 1, "timeoutSeconds": 1, "rise": 2, "fall": 3},
        "tls": {"certificateFile": null, "keyFile": null}
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    serde_json::to_vec(&base).unwrap()
}

fn put(state: &mut StoreState, key: &str, value: &[u8]) {
    assert!(state.apply(key, Some(value)), "{key}");
}

#[test]
fn a_listener_resolves_with_sorted_unique_endpoints() {
    let mut state = StoreState::default();
    put(
        &mut state,
        &keys::lb_listener("web"),
        &listener(serde_json::json!({})),
    );
    let desired = state.desired(&Selection::All, None);
    let spec = desired["web"].as_ref().unwrap();
    assert_eq!(spec.bind, "127.0.0.9:8000".parse().unwrap());
    assert_eq!(spec.policy, Policy::LeastConnections);
    assert_eq!(
        spec.backends,
        [
            "127.0.0.1:80".parse().unwrap(),
            "127.0.0.2:80".parse().unwrap()
        ]
    );
    assert_eq!(spec.health.probe, Probe::Http { path: "/ok".into() });
    assert_eq!((spec.health.rise, spec.health.fall), (2, 3));
}

#[test]
fn selection_by_node_and_by_name() {
    let mut state = StoreState::default();
    put(
        &mut state,
        &keys::lb_listener("a"),
        &listener(serde_json::json!({"nodes": ["edge1"]})),
    );
    put(
        &mut state,
        &keys::lb_listener("b"),
        &listener(serde_json::json!({"nodes": ["edge2"]})),
    );
    let names =
        |state: &StoreState, s: &Selection| state.desired(s, None).into_keys().collect::<Vec<_>>();
    assert_eq!(names(&state, &Selection::All), ["a", "b"]);
    assert_eq!(names(&state, &Selection::Node("edge2".into())), ["b"]);
    assert_eq!(
        names(&state, &Selection::Names(["a".to_owned()].into())),
        ["a"]
    );
    state.apply(&keys::lb_listener("a"), None);
    assert_eq!(names(&state, &Selection::All), ["b"]);
}

#[test]
fn problems_are_reported_per_listener() {
    let mut state = StoreState::default();
    put(&mut state, &keys::lb_listener("bad"), b"{not json");
    put(
        &mut state,
        &keys::lb_listener("nulladdr"),
        &listener(serde_json::json!({"address": null})),
    );
    put(
        &mut state,
        &keys::lb_listener("notls"),
        &listener(serde_json::json!({"protocol": "https"})),
    );
    let desired = state.desired(&Selection::All, None);
    assert!(matches!(desired["bad"], Err(SpecError::Unreadable(_))));
    assert_eq!(desired["nulladdr"], Err(SpecError::NoNode));
    assert_eq!(desired["notls"], Err(SpecError::NoTls));
    let with_node = state.desired(&Selection::All, Some("edge9"));
    assert_eq!(
        with_node["nulladdr"],
        Err(SpecError::NoAddress {
            node: "edge9".into()
        })
    );
}

#[test]
fn service_backends_are_the_healthy_assigned_instances() {
    let mut state = StoreState::default();
    let declared = listener(serde_json::json!({
        "backends": {"service": "web", "servicePort": "http", "endpoints": []}
    }));
    put(&mut state, &keys::lb_listener("web"), &declared);
    put(
        &mut state,
        &keys::service_assignment("web", "0"),
        br#"{"node":"n1","ports":{"http":8081},"later":1}"#,
    );
    put(
        &mut state,
        &keys::service_assignment("web", "1"),
        br#"{"node":"n2","ports":{}}"#,
    );
    let status = |addr: &str, state: &str| {
        format!(r#"{{"state":"{state}","address":"{addr}","ports":{{"http":8082}}}}"#).into_bytes()
    };
    put(
        &mut state,
        &keys::instance_status("n1", "web-0"),
        &status("127.0.0.21", "healthy"),
    );
    put(
        &mut state,
        &keys::instance_status("n2", "web-1"),
        &status("127.0.0.22", "unhealthy"),
    );
    let backends = |state: &StoreState| {
        state.desired(&Selection::All, None)["web"]
            .as_ref()
            .unwrap()
            .backends
            .clone()
    };
    // The assignment's port wins over the status's.
    assert_eq!(backends(&state), ["127.0.0.21:8081".parse().unwrap()]);
    put(
        &mut state,
        &keys::instance_status("n2", "web-1"),
        &status("127.0.0.22", "healthy"),
    );
    assert_eq!(
        backends(&state),
        [
            "127.0.0.21:8081".parse().unwrap(),
            "127.0.0.22:8082".parse().unwrap()
        ]
    );
    state.apply(&keys::service_assignment("web", "0"), None);
    assert_eq!(backends(&state), ["127.0.0.22:8082".parse().unwrap()]);
    assert!(!state.apply("/uc/v1/nodes/n1/heartbeat", Some(b"{}")));
}

#[test]
fn only_socket_changes_rebind() {
    let mut state = StoreState::default();
    put(
        &mut state,
        &keys::lb_listener("web"),
        &listener(serde_json::json!({})),
    );
    let before = state.desired(&Selection::All, None)["web"].clone().unwrap();
    put(
        &mut state,
        &keys::lb_listener("web"),
        &listener(
            serde_json::json!({"balance": "round-robin", "backends": {"service": null, "servicePort": null, "endpoints": []}}),
        ),
    );
    let after = state.desired(&Selection::All, None)["web"].clone().unwrap();
    assert!(!before.rebind_needed(&after));
    put(
        &mut state,
        &keys::lb_listener("web"),
        &listener(serde_json::json!({"port": 8001})),
    );
    let moved = state.desired(&Selection::All, None)["web"].clone().unwrap();
    assert!(before.rebind_needed(&moved));
}

#[test]
fn a_node_out_of_traffic_has_no_backends_until_restored() {
    let mut state = StoreState::default();
    let declared = listener(serde_json::json!({
        "backends": {"service": "web", "servicePort": "http", "endpoints": ["127.0.0.9:80"]}
    }));
    put(&mut state, &keys::lb_listener("web"), &declared);
    for (id, node, addr) in [("0", "n1", "127.0.0.21"), ("1", "n2", "127.0.0.22")] {
        let assignment = format!(r#"{{"node":"{node}","ports":{{"http":8080}}}}"#);
        put(
            &mut state,
            &keys::service_assignment("web", id),
            assignment.as_bytes(),
        );
        let status = format!(r#"{{"state":"healthy","address":"{addr}","ports":{{}}}}"#);
        put(
            &mut state,
            &keys::instance_status(node, &keys::instance_name("web", id)),
            status.as_bytes(),
        );
    }
    let backends = |state: &StoreState| -> Vec<String> {
        state.desired(&Selection::All, None)["web"]
            .as_ref()
            .unwrap()
            .backends
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let everything = ["127.0.0.9:80", "127.0.0.21:8080", "127.0.0.22:8080"];
    assert_eq!(backends(&state), everything);
    let drain = |drained: bool| {
        serde_json::to_vec(&uc_types::TrafficDrain {
            drained,
            reason: "rollout 2".into(),
            since: 0,
            rollout: Some(2),
            serving: Vec::new(),
        })
        .unwrap()
    };
    let key = keys::node_traffic("n1");
    put(&mut state, &key, &drain(true));
    // Its instance leaves; static endpoints are not instances and stay.
    assert_eq!(backends(&state), ["127.0.0.9:80", "127.0.0.22:8080"]);
    assert!(!state.apply(&key, Some(&drain(true))), "unchanged");
    put(&mut state, &key, &drain(false));
    assert_eq!(backends(&state), everything);
    assert!(!state.apply(&key, Some(b"{")), "unreadable drains nothing");
    put(&mut state, &key, &drain(true));
    put(&mut state, &key, &[]);
    assert_eq!(
        backends(&state),
        everything,
        "an empty value drains nothing"
    );
    put(&mut state, &key, &drain(true));
    assert!(state.apply(&key, None));
    assert_eq!(backends(&state), everything);
}
