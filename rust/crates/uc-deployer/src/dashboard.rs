//! The web dashboard: one server-rendered page with the nodes (desired and
//! observed system), the rollout, pending machines, services and their
//! instances, read from the store at each request.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use etcd_client::Client;
use uc_types::{
    keys, DesiredSystem, ManifestRevision, ObservedSystem, RolloutRecord, RolloutState,
};

use crate::phone_home::PendingMachine;
use crate::store::{get_json, Store};

pub fn router(store: Store) -> Router {
    Router::new().route("/", get(page)).with_state(store)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `/nix/store/<hash>-name` shown as `name (hash…)`.
fn short(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    match base.split_once('-') {
        Some((hash, name)) if hash.len() == 32 => format!("{name} ({}…)", &hash[..7]),
        _ => base.to_owned(),
    }
}

async fn page(State(store): State<Store>) -> Response {
    let Some(mut client) = store.get().cloned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not reachable yet",
        )
            .into_response();
    };
    match render(&mut client).await {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {err}")).into_response(),
    }
}

async fn render(client: &mut Client) -> Result<String, etcd_client::Error> {
    let current: Option<(ManifestRevision, i64)> =
        get_json(client, &keys::manifest_current()).await?;
    let rollout: Option<(RolloutRecord, i64)> = get_json(client, &keys::rollout_current()).await?;
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>UltraCloud</title><style>\
         body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:2em}\
         td,th{border:1px solid #ccc;padding:.3em .7em;text-align:left}th{background:#f3f3f3}\
         .healthy{color:#1a7f37}.failed,.rolled-back{color:#c62828}.switching{color:#9a6700}\
         </style></head><body>",
    );
    let Some((current, _)) = current else {
        html.push_str("<h1>UltraCloud</h1><p>No manifest deployed yet: run <code>uc deploy</code>.</p></body></html>");
        return Ok(html);
    };
    let manifest = &current.manifest;
    html.push_str(&format!(
        "<h1>Cluster {}</h1><p>Manifest revision {}</p>",
        escape(&manifest.cluster.name),
        current.revision
    ));

    html.push_str("<h2>Nodes</h2><table id=\"nodes\"><tr><th>node</th><th>roles</th><th>address</th><th>desired</th><th>observed</th><th>state</th><th>error</th></tr>");
    for (name, node) in &manifest.nodes {
        let desired: Option<(DesiredSystem, i64)> =
            get_json(client, &keys::desired_system(name)).await?;
        let observed: Option<(ObservedSystem, i64)> =
            get_json(client, &keys::observed_system(name)).await?;
        let roles: Vec<&str> = node.roles.iter().map(|r| r.as_str()).collect();
        let (observed_path, state, error) = match observed.map(|(o, _)| o) {
            Some(o) => {
                let state = o.state.as_str().to_owned();
                (
                    o.store_path.as_deref().map(short).unwrap_or_default(),
                    state,
                    o.error.unwrap_or_default(),
                )
            }
            None => (String::new(), "no-report".into(), String::new()),
        };
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{state}\">{state}</td><td>{}</td></tr>",
            escape(name),
            roles.join(", "),
            node.primary_address().map(|a| a.to_string()).unwrap_or_default(),
            escape(&desired.map(|(d, _)| short(&d.store_path)).unwrap_or_default()),
            escape(&observed_path),
            escape(&error),
        ));
    }
    html.push_str("</table>");

    html.push_str("<h2>Rollout</h2>");
    match rollout.map(|(r, _)| r) {
        None => html.push_str("<p>No rollout yet.</p>"),
        Some(r) => {
            let state = r.state.as_str();
            html.push_str(&format!(
                "<p id=\"rollout\">Rollout {}: <b>{state}</b>, wave {} of {}</p><ol>",
                r.id,
                (r.wave + 1).min(r.waves.len()),
                r.waves.len()
            ));
            for (i, wave) in r.waves.iter().enumerate() {
                let mark = if i < r.wave {
                    "done"
                } else if i > r.wave {
                    "waiting"
                } else {
                    match r.state {
                        RolloutState::Running => "in progress",
                        RolloutState::Paused => "paused",
                        RolloutState::Failed => "failed",
                        RolloutState::Aborted => "aborted",
                        RolloutState::Succeeded => "done",
                    }
                };
                html.push_str(&format!("<li>{} — {mark}</li>", escape(&wave.join(", "))));
            }
            html.push_str("</ol>");
            if let Some(error) = r.error {
                html.push_str(&format!("<p class=\"failed\">{}</p>", escape(&error)));
            }
        }
    }

    html.push_str("<h2>Pending machines</h2>");
    let pending = client
        .get(
            keys::pending_prefix(),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await?;
    let machines: Vec<PendingMachine> = pending
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
        .collect();
    if machines.is_empty() {
        html.push_str("<p>None.</p>");
    } else {
        html.push_str("<table id=\"pending\"><tr><th>id</th><th>MAC addresses</th><th>DMI serial</th><th>disks</th></tr>");
        for m in machines {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&m.id),
                escape(&m.facts.mac_addresses.join(", ")),
                escape(m.facts.dmi_serial.as_deref().unwrap_or("")),
                escape(&m.facts.disks.join(", "))
            ));
        }
        html.push_str("</table>");
    }

    html.push_str("<h2>Services</h2><table id=\"services\"><tr><th>service</th><th>replicas</th><th>eligible nodes</th><th>listeners</th></tr>");
    for (name, svc) in &manifest.services {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            svc.replicas,
            escape(&svc.eligible_nodes.join(", ")),
            escape(&svc.listeners.join(", "))
        ));
    }
    html.push_str("</table>");

    // Where each instance runs and how it is doing (node-agents' statuses).
    let view = crate::api::services_view(client).await?;
    html.push_str("<h2>Instances</h2><table id=\"instances\"><tr><th>service</th><th>instance</th><th>node</th><th>state</th><th>restarts</th><th>ports</th><th>message</th></tr>");
    for (service, s) in &view.services {
        for i in &s.instances {
            let status = i.status.as_ref();
            let ports: Vec<String> = i
                .ports
                .iter()
                .map(|(name, port)| format!("{name}={port}"))
                .collect();
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"state\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(service),
                escape(&i.name),
                escape(&i.node),
                escape(status.map_or("no status", |s| s.state.as_str())),
                status.map_or(0, |s| s.restarts),
                escape(&ports.join(", ")),
                escape(status.and_then(|s| s.message.as_deref()).unwrap_or(""))
            ));
        }
        if let Some(placement) = &s.placement {
            html.push_str(&format!(
                "<tr><td>{}</td><td colspan=\"6\">{} of {} replicas placed</td></tr>",
                escape(service),
                placement.placed,
                placement.replicas
            ));
        }
    }
    html.push_str("</table></body></html>");
    Ok(html)
}
