//! The web dashboard: one server-rendered page with the nodes (desired and
//! observed system), the rollout, pending machines, services and their
//! instances, load-balancer listeners with their backends' health, and DNS
//! zones, read from the store at each request. Every state is written as a
//! word (the colours only repeat it) and every string from the store is
//! escaped.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use etcd_client::Client;
use uc_types::{
    keys, DesiredSystem, DnsView, LbView, ManifestRevision, ObservedSystem, RolloutRecord,
    RolloutState,
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
         .healthy,.up{color:#1a7f37}.failed,.rolled-back,.down,.no-report{color:#c62828}\
         .switching,.draining,.unknown{color:#9a6700}\
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
    html.push_str("</table>");
    html.push_str(&lb_section(&crate::api::lb_view(client).await?));
    html.push_str(&dns_section(&crate::api::dns_view(client).await?));
    html.push_str("</body></html>");
    Ok(html)
}

/// A table row of escaped cells; the last one, the state, carries `class`
/// (its colour).
fn row(class: &str, cells: &[&str]) -> String {
    let mut out = String::from("<tr>");
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == cells.len() && !class.is_empty() {
            out.push_str(&format!("<td class=\"{class}\">"));
        } else {
            out.push_str("<td>");
        }
        out.push_str(&escape(cell));
        out.push_str("</td>");
    }
    out.push_str("</tr>");
    out
}

/// Per listener, per LB node, each backend with its health; an LB node
/// the listener is declared on that has no report runs no uc-lb.
fn lb_section(view: &LbView) -> String {
    let mut html = String::from("<h2>Load balancers</h2>");
    if view.listeners.is_empty() {
        html.push_str("<p>No listeners.</p>");
        return html;
    }
    html.push_str("<table id=\"lb\"><tr><th>listener</th><th>LB node</th><th>listening on</th><th>listener state</th><th>backend</th><th>health</th></tr>");
    for (name, listener) in &view.listeners {
        let declared = listener.declared.as_ref();
        let title = match declared {
            Some(d) => format!("{name} ({} port {})", d.protocol.as_str(), d.port),
            None => format!("{name} (no longer declared)"),
        };
        let mut nodes: Vec<&String> = declared
            .map(|d| d.nodes.iter().collect())
            .unwrap_or_default();
        nodes.extend(listener.reports.keys().chain(listener.unreadable.keys()));
        nodes.sort();
        nodes.dedup();
        for node in nodes {
            let Some(status) = listener.reports.get(node) else {
                let why = match listener.unreadable.get(node) {
                    Some(error) => format!("unreadable report: {error}"),
                    None => "no uc-lb reports from this node".to_owned(),
                };
                html.push_str(&row(
                    "no-report",
                    &[&title, node, "", &why, "", "no report"],
                ));
                continue;
            };
            let address = status.listening_on();
            let state = match &status.error {
                _ if status.serving => "serving".to_owned(),
                Some(error) => format!("not serving: {error}"),
                None => "not serving".to_owned(),
            };
            if status.backends.is_empty() {
                html.push_str(&row("", &[&title, node, &address, &state, "none", ""]));
            }
            for backend in &status.backends {
                let health = backend.health();
                let address_of_backend = backend.address.to_string();
                let cells = [
                    &*title,
                    node,
                    &address,
                    &state,
                    &address_of_backend,
                    &health,
                ];
                html.push_str(&row(backend.state.as_str(), &cells));
            }
        }
    }
    html.push_str("</table>");
    if !view.drained_nodes.is_empty() {
        html.push_str(
            "<p id=\"drained\">Out of traffic (their instances drain from every listener):</p><ul>",
        );
        for (node, drain) in &view.drained_nodes {
            let line = format!("{node}: {} (since {})", drain.reason, drain.since);
            html.push_str(&format!("<li>{}</li>", escape(&line)));
        }
        html.push_str("</ul>");
    }
    html
}

/// Each zone in the store with its record counts, secondaries and the
/// uc-dns servers that serve it.
fn dns_section(view: &DnsView) -> String {
    let mut html = String::from("<h2>DNS zones</h2>");
    if view.zones.is_empty() {
        html.push_str("<p>No zones.</p>");
        return html;
    }
    html.push_str("<table id=\"dns\"><tr><th>zone</th><th>declared at store revision</th><th>records</th><th>PTR patterns</th><th>name servers</th><th>secondaries</th><th>served by (uc-dns)</th><th>serving now (serial, health)</th><th>error</th></tr>");
    for (apex, zone) in &view.zones {
        html.push_str(&row(
            "",
            &[
                apex,
                &zone.revision.to_string(),
                &zone.records.to_string(),
                &zone.ptr_patterns.to_string(),
                &zone.nameservers.join(", "),
                &zone.secondaries_text(),
                &zone.servers_text(),
                &zone.serving_text(),
                zone.error.as_deref().unwrap_or(""),
            ],
        ));
    }
    html.push_str(
        "</table><p>uc-dns raises a zone's SOA serial from the declaration's revision \
        whenever what the zone answers changes. \"Serving now\" is what each server reports \
        under <code>/uc/v1/dns/status/&lt;node&gt;</code> (on its lease: \"no report\" when \
        it is not running); servers of one zone with different serials have not all \
        caught up yet.</p>",
    );
    html
}
