//! `uc services` and `uc logs`: the deployer's view of services, as a table
//! and as the instances' logs fetched from each node-agent.

use std::fmt::Write;

use serde_json::Value;

use crate::client;

/// One line per instance, then the reasons of anything unplaced.
pub fn table(view: &Value) -> String {
    let mut rows = vec![[
        "SERVICE", "INSTANCE", "NODE", "STATE", "RESTARTS", "PORTS", "MESSAGE",
    ]
    .map(str::to_owned)];
    let empty = serde_json::Map::new();
    let services = view["services"].as_object().unwrap_or(&empty);
    for (service, s) in services {
        for i in s["instances"].as_array().into_iter().flatten() {
            let status = &i["status"];
            let state = status["state"].as_str().map_or_else(
                || "no status".to_owned(),
                |state| match status["phase"].as_str() {
                    Some("running") | None => state.to_owned(),
                    Some(phase) => format!("{state}/{phase}"),
                },
            );
            let ports = i["ports"]
                .as_object()
                .map(|p| {
                    p.iter()
                        .map(|(name, port)| format!("{name}={port}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            rows.push([
                service.clone(),
                i["name"].as_str().unwrap_or("").to_owned(),
                i["node"].as_str().unwrap_or("").to_owned(),
                state,
                status["restarts"].as_u64().unwrap_or(0).to_string(),
                ports,
                status["message"].as_str().unwrap_or("").to_owned(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    for (service, s) in services {
        let placement = &s["placement"];
        if placement.is_null() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{service}: {} of {} replicas placed",
            placement["placed"], placement["replicas"]
        );
        for stuck in placement["stuck"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  stuck (nowhere to move): {}",
                stuck.as_str().unwrap_or("")
            );
        }
        for (node, why) in placement["reasons"].as_object().into_iter().flatten() {
            let why: Vec<&str> = why
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !why.is_empty() {
                let _ = writeln!(out, "  {node}: {}", why.join("; "));
            }
        }
    }
    let cordoned: Vec<String> = view["nodes"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(node, n)| {
            let c = &n["cordon"];
            (!c.is_null()).then(|| {
                let what = if c["drain"].as_bool() == Some(true) {
                    "draining"
                } else {
                    "cordoned"
                };
                format!("{node} ({what})")
            })
        })
        .collect();
    if !cordoned.is_empty() {
        let _ = writeln!(out, "\nunschedulable nodes: {}", cordoned.join(", "));
    }
    out
}

/// The last `lines` of each instance's log, headed by instance and node.
pub fn logs(
    view: &Value,
    service: &str,
    only: Option<&str>,
    lines: usize,
) -> Result<String, String> {
    let Some(s) = view["services"].get(service) else {
        let known: Vec<&String> = view["services"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        return Err(format!(
            "no service {service} deployed (services: {})",
            known
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let mut out = String::new();
    let mut shown = 0;
    for i in s["instances"].as_array().into_iter().flatten() {
        let id = i["id"].as_str().unwrap_or("");
        if only.is_some_and(|o| o != id) {
            continue;
        }
        shown += 1;
        let name = i["name"].as_str().unwrap_or("");
        let node = i["node"].as_str().unwrap_or("");
        let _ = writeln!(out, "==> {name} on {node} <==");
        let Some(agent) = i["agentUrl"].as_str() else {
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
        return Err(match only {
            Some(id) => format!("service {service} has no instance {id}"),
            None => format!("service {service} has no instances placed (see `uc services`)"),
        });
    }
    Ok(out)
}
