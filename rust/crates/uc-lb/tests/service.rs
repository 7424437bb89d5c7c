//! uc-lb follows the cluster: a listener whose backends are a service
//! sends to the instances the scheduler assigned and their node-agents
//! report healthy, and an instance turning unhealthy leaves within a
//! second, with no restart; with --node, only the listeners whose nodes
//! include it are served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{curl, listener, port, Backend, Lb};
use serde_json::json;
use uc_types::{keys, Assignment, InstancePhase, InstanceState, InstanceStatus};

/// What the scheduler writes for instance `id` of web on `node`.
fn assign(lb: &Lb, id: &str, node: &str, port: u16) {
    let assignment = Assignment {
        node: node.to_owned(),
        ports: BTreeMap::from([("http".to_owned(), port)]),
    };
    lb.etcd.ctl(&[
        "put",
        &keys::service_assignment("web", id),
        &serde_json::to_string(&assignment).unwrap(),
    ]);
}

/// What a node-agent writes about instance `id` of web on `node`.
fn report(lb: &Lb, node: &str, id: &str, addr: SocketAddr, state: InstanceState) {
    let status = InstanceStatus {
        service: "web".to_owned(),
        id: id.to_owned(),
        state,
        phase: InstancePhase::Running,
        pid: Some(4242),
        restarts: 0,
        address: addr.ip(),
        ports: BTreeMap::from([("http".to_owned(), addr.port())]),
        since: 0,
        message: None,
    };
    let key = keys::instance_status(node, &keys::instance_name("web", id));
    lb.etcd
        .ctl(&["put", &key, &serde_json::to_string(&status).unwrap()]);
}

#[test]
fn service_backends_follow_instance_health_and_nodes_select_listeners() {
    let lb = Lb::start(
        "uc-lb-service",
        &["--node", "edge1", "--drain-timeout", "1"],
    );
    let (one, two) = (Backend::http("one"), Backend::http("two"));
    let (p, elsewhere) = (port(), port());
    let backends = json!({"backends": {"service": "web", "servicePort": "http", "endpoints": []}});
    lb.put_listener("web", &listener("http", p, &[], backends));
    lb.put_listener(
        "other",
        &listener("http", elsewhere, &[one.addr], json!({"nodes": ["edge2"]})),
    );
    // Nodes not in the manifest: the address the instance reported is used.
    assign(&lb, "0", "w1", one.addr.port());
    assign(&lb, "1", "w2", two.addr.port());
    report(&lb, "w1", "0", one.addr, InstanceState::Healthy);
    report(&lb, "w2", "1", two.addr, InstanceState::Unhealthy);
    lb.wait_backend("web", one.addr, "up", Duration::from_secs(5));
    let (code, body) = curl(&["-m", "5", &format!("http://127.0.0.1:{p}/")]).unwrap();
    assert_eq!((code, body.split_whitespace().next()), (200, Some("one")));

    // two turns healthy: in the listener within a second (then probed).
    let started = Instant::now();
    report(&lb, "w2", "1", two.addr, InstanceState::Healthy);
    let status = uc_testkit::wait_for("two in the listener", Duration::from_secs(2), || {
        let status = lb.status("web")?;
        status["backends"]
            .as_array()?
            .iter()
            .any(|b| b["address"] == json!(two.addr.to_string()))
            .then_some(status)
    });
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "applied after {:?}: {status}",
        started.elapsed()
    );
    lb.wait_backend("web", two.addr, "up", Duration::from_secs(3));

    // one turns unhealthy: it drains out within a second.
    let started = Instant::now();
    report(&lb, "w1", "0", one.addr, InstanceState::Unhealthy);
    // No connection is open to it, so its drain ends at once: draining, or gone.
    uc_testkit::wait_for("one out of rotation", Duration::from_secs(2), || {
        let status = lb.status("web")?;
        let up = status["backends"]
            .as_array()?
            .iter()
            .any(|b| b["address"] == json!(one.addr.to_string()) && b["state"] == "up");
        (!up).then_some(())
    });
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "out after {:?}",
        started.elapsed()
    );
    for _ in 0..4 {
        let (code, body) = curl(&["-m", "5", &format!("http://127.0.0.1:{p}/")]).unwrap();
        assert_eq!((code, body.split_whitespace().next()), (200, Some("two")));
    }

    // --node edge1: the listener on edge2 only is not served here.
    assert!(
        lb.status("other").is_none(),
        "a listener of edge2 has a status from edge1"
    );
    assert!(
        curl(&["-m", "2", &format!("http://127.0.0.1:{elsewhere}/")]).is_none(),
        "a listener of edge2 answers on edge1"
    );
    let (code, health) = lb.health().unwrap();
    assert_eq!(
        (code, health["status"].as_str()),
        (200, Some("ok")),
        "{health}"
    );
    assert!(health["listeners"]["other"].is_null(), "{health}");
}
