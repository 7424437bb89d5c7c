//! `uc lb`: every load-balancer listener, each LB node's report of it and
//! every backend's health, from the deployer's `GET /api/v1/lb`.

use std::fmt::Write;

use uc_types::LbView;

use crate::table;

/// One line per backend of each listener on each LB node (one per LB node
/// without backends or without a report), then why listeners do not serve.
pub fn render(view: &LbView) -> String {
    if view.listeners.is_empty() {
        return "no listeners\n".to_owned();
    }
    let mut rows = vec![table::header(&[
        "LISTENER",
        "PROTOCOL",
        "PORT",
        "LB NODE",
        "LISTENING ON",
        "STATE",
        "BACKEND",
        "HEALTH",
    ])];
    let mut problems = Vec::new();
    for (name, listener) in &view.listeners {
        let (protocol, port) = match &listener.declared {
            Some(d) => (d.protocol.as_str().to_owned(), d.port.to_string()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        if listener.declared.is_none() {
            problems.push(format!("{name}: reported but no longer declared"));
        }
        let mut nodes: Vec<&String> = listener
            .declared
            .iter()
            .flat_map(|d| &d.nodes)
            .chain(listener.reports.keys())
            .chain(listener.unreadable.keys())
            .collect();
        nodes.sort();
        nodes.dedup();
        for node in nodes {
            let mut line = |listening: String, state: &str, backend: String, health: &str| {
                rows.push(vec![
                    name.clone(),
                    protocol.clone(),
                    port.clone(),
                    node.clone(),
                    listening,
                    state.to_owned(),
                    backend,
                    health.to_owned(),
                ]);
            };
            let Some(status) = listener.reports.get(node) else {
                match listener.unreadable.get(node) {
                    Some(err) => {
                        problems.push(format!("{name} on {node}: unreadable report: {err}"))
                    }
                    None => problems.push(format!(
                        "{name} on {node}: no report (no uc-lb running there?)"
                    )),
                }
                line(String::new(), "no report", String::new(), "");
                continue;
            };
            let listening = status.listening_on();
            let state = if status.serving {
                "serving"
            } else {
                "not serving"
            };
            if let Some(error) = &status.error {
                problems.push(format!("{name} on {node}: {error}"));
            }
            if status.backends.is_empty() {
                line(listening.clone(), state, "none".to_owned(), "");
            }
            for backend in &status.backends {
                let health = backend.health();
                line(
                    listening.clone(),
                    state,
                    backend.address.to_string(),
                    &health,
                );
            }
        }
    }
    for (node, drain) in &view.drained_nodes {
        problems.push(format!(
            "{node}: out of traffic ({}, since {}): its instances drain from every listener",
            drain.reason, drain.since
        ));
    }
    let mut out = table::render(&rows);
    if !problems.is_empty() {
        out.push('\n');
        for problem in problems {
            let _ = writeln!(out, "{problem}");
        }
    }
    out
}
