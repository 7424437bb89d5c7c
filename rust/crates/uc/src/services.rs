//! `uc services` and `uc logs`: the deployer's view of services, as a table
//! and as the instances' logs fetched from each node-agent.

use std::fmt::Write;

use uc_types::{InstancePhase, ServicesView};

use crate::{client, table};

/// One line per instance, then the reasons of anything unplaced.
pub fn table(view: &ServicesView) -> String {
    let mut rows = vec![table::header(&[
        "SERVICE", "INSTANCE", "NODE", "STATE", "RESTARTS", "PORTS", "MESSAGE",
    ])];
    for (service, s) in &view.services {
        for i in &s.instances {
            let status = i.status.as_ref();
            let state = status.map_or_else(
                || "no status".to_owned(),
                |status| match status.phase {
                    InstancePhase::Running => status.state.as_str().to_owned(),
                    phase => format!("{}/{}", status.state.as_str(), phase.as_str()),
                },
            );
            let ports: Vec<String> = i
                .ports
                .iter()
                .map(|(name, port)| format!("{name}={port}"))
                .collect();
            rows.push(vec![
                service.clone(),
                i.name.clone(),
                i.node.clone(),
                state,
                status.map_or(0, |s| s.restarts).to_string(),
                ports.join(","),
                status.and_then(|s| s.message.clone()).unwrap_or_default(),
            ]);
        }
    }
    let mut out = table::render(&rows);
    for (service, s) in &view.services {
        let Some(placement) = &s.placement else {
            continue;
        };
        let _ = writeln!(
            out,
            "\n{service}: {} of {} replicas placed",
            placement.placed, placement.replicas
        );
        for stuck in &placement.stuck {
            let _ = writeln!(out, "  stuck (nowhere to move): {stuck}");
        }
        for (node, why) in &placement.reasons {
            if !why.is_empty() {
                let _ = writeln!(out, "  {node}: {}", why.join("; "));
            }
        }
    }
    let cordoned: Vec<String> = view
        .nodes
        .iter()
        .filter_map(|(node, n)| {
            let what = if n.cordon.as_ref()?.drain {
                "draining"
            } else {
                "cordoned"
            };
            Some(format!("{node} ({what})"))
        })
        .collect();
    if !cordoned.is_empty() {
        let _ = writeln!(out, "\nunschedulable nodes: {}", cordoned.join(", "));
    }
    out
}

/// Why `uc logs` has no instance to show.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("no service {service} deployed (services: {known})")]
    UnknownService { service: String, known: String },
    #[error("service {service} has no instance {id}")]
    UnknownInstance { service: String, id: String },
    #[error("service {service} has no instances placed (see `uc services`)")]
    NothingPlaced { service: String },
}

/// The last `lines` of each instance's log, headed by instance and node.
pub fn logs(
    view: &ServicesView,
    service: &str,
    only: Option<&str>,
    lines: usize,
) -> Result<String, LogsError> {
    let Some(s) = view.services.get(service) else {
        let known: Vec<&str> = view.services.keys().map(String::as_str).collect();
        return Err(LogsError::UnknownService {
            service: service.to_owned(),
            known: known.join(", "),
        });
    };
    let mut out = String::new();
    let mut shown = 0;
    for i in &s.instances {
        if only.is_some_and(|o| o != i.id) {
            continue;
        }
        shown += 1;
        let (name, node) = (&i.name, &i.node);
        let _ = writeln!(out, "==> {name} on {node} <==");
        let Some(agent) = &i.agent_url else {
            let _ = writeln!(out, "(node {node} has no live node-agent: no logs)");
            continue;
        };
        match client::request_to(
            &format!("the node-agent of {node}"),
            agent,
            "GET",
            &format!("/logs/{name}?lines={lines}"),
            None,
        ) {
            Ok(r) if r.status == 200 => out.push_str(&r.body),
            Ok(r) => {
                let _ = writeln!(out, "(node-agent answered {}: {})", r.status, r.body.trim());
            }
            Err(err) => {
                let _ = writeln!(out, "({err})");
            }
        }
    }
    if shown == 0 {
        let service = service.to_owned();
        return Err(match only {
            Some(id) => LogsError::UnknownInstance {
                service,
                id: id.to_owned(),
            },
            None => LogsError::NothingPlaced { service },
        });
    }
    Ok(out)
}
