//! The deployer's HTTP API: deploy a manifest, read and steer the rollout,
//! see services and their instances, cordon, drain and uncordon nodes, see
//! DNS zones and load-balancer listeners with their backends.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use etcd_client::{Client, GetOptions};
use serde::Serialize;
use uc_types::keys::{self, Key};
use uc_types::{
    unix_seconds, ApiError, Assignment, DnsServerReport, DnsServerStatus, DnsServerView, DnsView,
    DnsZoneRecords, DnsZoneView, InstanceStatus, InstanceView, LbListenerStatus, LbListenerView,
    LbView, Listener, ManifestRevision, NodeActionAnswer, NodeActionRequest, NodeCordon,
    NodeHeartbeat, NodeView, PlacementStatus, RolloutRecord, RolloutState, Service, ServiceView,
    ServicesView, TrafficDrain, Zone,
};

use crate::deploy::{self, DeployError, DeployRequest};
/// Where it was before `store.rs`; uc-nix-agent's tests name it here.
pub use crate::store::Store;
use crate::store::{compare_and_put, get_json};

fn store_unreachable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store is not reachable yet",
    )
}

pub fn router(store: Store) -> Router {
    Router::new()
        .route("/api/v1/deploy", post(deploy_handler))
        .route("/api/v1/rollout", get(rollout_status))
        .route("/api/v1/rollout/{action}", post(rollout_action))
        .route("/api/v1/services", get(services))
        .route("/api/v1/lb", get(lb))
        .route("/api/v1/dns", get(dns))
        .route("/api/v1/dns/zones/{zone}", get(dns_zone))
        .route("/api/v1/nodes/{node}/{action}", post(node_action))
        .with_state(store)
}

/// A read view built from the store, as JSON (503 while the store is not
/// reachable or does not answer).
async fn read_view<T, F, Fut>(store: &Store, build: F) -> Response
where
    T: Serialize,
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let Some(store) = store.get().cloned() else {
        return store_unreachable();
    };
    match build(store).await {
        Ok(view) => json(StatusCode::OK, &view),
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

/// A JSON answer. Written through a `serde_json::Value`, so that object
/// keys come sorted, as clients have always seen them.
pub(crate) fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let value = serde_json::to_value(body).unwrap_or_default();
    uc_daemon::http::json_response(status, &value)
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json(
        status,
        &ApiError {
            error: message.into(),
        },
    )
}

async fn deploy_handler(State(store): State<Store>, body: Bytes) -> Response {
    let Some(mut store) = store.get().cloned() else {
        return store_unreachable();
    };
    let request: DeployRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not {{\"manifest\": …, \"systems\": {{node: path}}}}: {err}"),
            )
        }
    };
    match deploy::deploy(&mut store, request).await {
        Ok(record) => json(StatusCode::CREATED, &record),
        Err(err @ DeployError::Invalid(_)) => {
            tracing::warn!(%err, "deployment refused");
            error(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
        }
        Err(err @ DeployError::Busy(_)) => error(StatusCode::CONFLICT, err.to_string()),
        Err(err @ DeployError::Store(_)) => error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

async fn rollout_status(State(store): State<Store>) -> Response {
    let Some(mut store) = store.get().cloned() else {
        return store_unreachable();
    };
    match get_json::<RolloutRecord>(&mut store, &keys::rollout_current()).await {
        Ok(Some((record, _))) => json(StatusCode::OK, &record),
        Ok(None) => error(StatusCode::NOT_FOUND, "no rollout yet"),
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

async fn rollout_action(State(store): State<Store>, Path(action): Path<String>) -> Response {
    let Some(mut store) = store.get().cloned() else {
        return store_unreachable();
    };
    let (from, to): (&[RolloutState], RolloutState) = match action.as_str() {
        "pause" => (&[RolloutState::Running], RolloutState::Paused),
        "resume" => (&[RolloutState::Paused], RolloutState::Running),
        "abort" => (
            &[RolloutState::Running, RolloutState::Paused],
            RolloutState::Aborted,
        ),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown action {action}: pause, resume or abort"),
            )
        }
    };
    let current = match get_json::<RolloutRecord>(&mut store, &keys::rollout_current()).await {
        Ok(Some(current)) => current,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no rollout yet"),
        Err(err) => return error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    };
    let (mut record, revision) = current;
    if !from.contains(&record.state) {
        return error(
            StatusCode::CONFLICT,
            format!(
                "rollout {} is {:?}; cannot {action} it",
                record.id, record.state
            ),
        );
    }
    record.state = to;
    if to == RolloutState::Running {
        // The health gate counts from the resume, not from before the pause.
        record.wave_started = unix_seconds();
    }
    match compare_and_put(&mut store, &record, revision).await {
        Ok(true) => {
            tracing::info!(rollout = record.id, action, "rollout steered");
            json(StatusCode::OK, &record)
        }
        Ok(false) => error(StatusCode::CONFLICT, "the rollout changed meanwhile; retry"),
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

/// Every service with its instances (assignment, node, status, where the
/// node-agent serves its logs) and why replicas are unplaced; every node
/// with its heartbeat and cordon. What `uc services` and `uc logs` read.
async fn services(State(store): State<Store>) -> Response {
    read_view(&store, |mut store| async move {
        services_view(&mut store).await
    })
    .await
}

pub(crate) async fn services_view(store: &mut Client) -> Result<ServicesView, etcd_client::Error> {
    let prefix = || Some(GetOptions::new().with_prefix());
    let mut replicas: BTreeMap<String, Option<u32>> = BTreeMap::new();
    let mut assignments: Vec<(String, String, Assignment)> = Vec::new();
    for kv in store.get(keys::services_prefix(), prefix()).await?.kvs() {
        match kv.key_str().ok().and_then(keys::parse) {
            Some(Key::ServiceSpec { service }) => {
                let spec = serde_json::from_slice::<Service>(kv.value()).ok();
                replicas.insert(service.to_owned(), spec.map(|s| s.replicas));
            }
            Some(Key::ServiceAssignment { service, id }) => {
                if let Ok(a) = serde_json::from_slice(kv.value()) {
                    assignments.push((service.to_owned(), id.to_owned(), a));
                }
            }
            _ => {}
        }
    }
    let mut heartbeats: BTreeMap<String, Option<NodeHeartbeat>> = BTreeMap::new();
    let mut cordons: BTreeMap<String, NodeCordon> = BTreeMap::new();
    for kv in store.get(keys::nodes_prefix(), prefix()).await?.kvs() {
        match kv.key_str().ok().and_then(keys::parse) {
            Some(Key::Heartbeat { node }) => {
                heartbeats.insert(node.to_owned(), serde_json::from_slice(kv.value()).ok());
            }
            Some(Key::NodeCordon { node }) => {
                if let Ok(cordon) = serde_json::from_slice(kv.value()) {
                    cordons.insert(node.to_owned(), cordon);
                }
            }
            _ => {}
        }
    }
    let mut statuses: BTreeMap<(String, String), InstanceStatus> = BTreeMap::new();
    for kv in store.get(keys::instances_prefix(), prefix()).await?.kvs() {
        if let Some(Key::InstanceStatus { node, instance }) =
            kv.key_str().ok().and_then(keys::parse)
        {
            if let Ok(status) = serde_json::from_slice(kv.value()) {
                statuses.insert((node.to_owned(), instance.to_owned()), status);
            }
        }
    }
    let mut unplaced: BTreeMap<String, PlacementStatus> = BTreeMap::new();
    for kv in store
        .get(keys::scheduler_status_prefix(), prefix())
        .await?
        .kvs()
    {
        if let Some(Key::SchedulerStatus { service }) = kv.key_str().ok().and_then(keys::parse) {
            if let Ok(status) = serde_json::from_slice(kv.value()) {
                unplaced.insert(service.to_owned(), status);
            }
        }
    }
    let agent_url = |node: &str| heartbeats.get(node).cloned().flatten().map(|h| h.url);
    let mut view = ServicesView::default();
    for (service, replicas) in replicas {
        let instances = assignments
            .iter()
            .filter(|(s, _, _)| *s == service)
            .map(|(_, id, a)| {
                let name = keys::instance_name(&service, id);
                InstanceView {
                    id: id.clone(),
                    status: statuses.get(&(a.node.clone(), name.clone())).cloned(),
                    name,
                    node: a.node.clone(),
                    ports: a.ports.clone(),
                    agent_url: agent_url(&a.node),
                }
            })
            .collect();
        let placement = unplaced.get(&service).cloned();
        view.services.insert(
            service,
            ServiceView {
                replicas,
                instances,
                placement,
            },
        );
    }
    if let Some((current, _)) =
        get_json::<ManifestRevision>(store, &keys::manifest_current()).await?
    {
        for node in current.manifest.nodes.keys() {
            view.nodes.insert(
                node.clone(),
                NodeView {
                    alive: heartbeats.contains_key(node),
                    agent_url: agent_url(node),
                    cordon: cordons.get(node).cloned(),
                },
            );
        }
    }
    Ok(view)
}

/// Every listener with its declaration and each uc-lb's report: what `uc
/// lb` reads.
async fn lb(State(store): State<Store>) -> Response {
    read_view(&store, |mut store| async move { lb_view(&mut store).await }).await
}

fn new_listener(declared: Option<Listener>) -> LbListenerView {
    LbListenerView {
        declared,
        reports: BTreeMap::new(),
        unreadable: BTreeMap::new(),
    }
}

pub(crate) async fn lb_view(store: &mut Client) -> Result<LbView, etcd_client::Error> {
    let prefix = || Some(GetOptions::new().with_prefix());
    let mut view = LbView::default();
    for kv in store
        .get(keys::lb_listeners_prefix(), prefix())
        .await?
        .kvs()
    {
        if let Some(Key::LbListener { name }) = kv.key_str().ok().and_then(keys::parse) {
            let declared = serde_json::from_slice(kv.value()).ok();
            view.listeners
                .insert(name.to_owned(), new_listener(declared));
        }
    }
    for kv in store.get(keys::lb_status_prefix(), prefix()).await?.kvs() {
        let Some(Key::LbListenerStatus { node, listener }) =
            kv.key_str().ok().and_then(keys::parse)
        else {
            continue;
        };
        let entry = view
            .listeners
            .entry(listener.to_owned())
            .or_insert_with(|| new_listener(None));
        match serde_json::from_slice::<LbListenerStatus>(kv.value()) {
            Ok(status) => {
                entry.reports.insert(node.to_owned(), status);
            }
            Err(err) => {
                entry.unreadable.insert(node.to_owned(), err.to_string());
            }
        }
    }
    for kv in store.get(keys::nodes_prefix(), prefix()).await?.kvs() {
        if let Some(Key::NodeTraffic { node }) = kv.key_str().ok().and_then(keys::parse) {
            match serde_json::from_slice::<TrafficDrain>(kv.value()) {
                Ok(drain) if drain.drained => {
                    view.drained_nodes.insert(node.to_owned(), drain);
                }
                _ => {}
            }
        }
    }
    Ok(view)
}

/// Every zone in the store with its record counts and servers: what `uc
/// dns` reads.
async fn dns(State(store): State<Store>) -> Response {
    read_view(
        &store,
        |mut store| async move { dns_view(&mut store).await },
    )
    .await
}

pub(crate) async fn dns_view(store: &mut Client) -> Result<DnsView, etcd_client::Error> {
    let prefix = Some(GetOptions::new().with_prefix());
    let zones = store.get(keys::dns_zones_prefix(), prefix).await?;
    let manifest = get_json::<ManifestRevision>(store, &keys::manifest_current()).await?;
    let statuses = dns_statuses(store).await?;
    let mut view = DnsView::default();
    for kv in zones.kvs() {
        let Some(Key::DnsZone { zone: apex }) = kv.key_str().ok().and_then(keys::parse) else {
            continue;
        };
        let servers = manifest
            .iter()
            .flat_map(|(current, _)| &current.manifest.nodes)
            .filter_map(|(node, n)| {
                let dns = n.daemons.dns.as_ref()?;
                dns.zones.iter().any(|z| z == apex).then(|| DnsServerView {
                    node: node.clone(),
                    listen: dns.listen.clone(),
                    http_listen: dns.http_listen,
                    report: statuses.get(node).map(|status| zone_report(status, apex)),
                })
            })
            .collect();
        let mut zone = DnsZoneView {
            revision: kv.mod_revision(),
            records: 0,
            ptr_patterns: 0,
            nameservers: Vec::new(),
            secondaries: Vec::new(),
            servers,
            error: None,
        };
        match serde_json::from_slice::<Zone>(kv.value()) {
            Ok(declared) => {
                zone.records = declared.records.len();
                zone.ptr_patterns = declared.ptr_patterns.len();
                zone.nameservers = declared.nameservers;
                zone.secondaries = declared.secondaries;
            }
            Err(err) => zone.error = Some(format!("the declaration does not parse: {err}")),
        }
        view.zones.insert(apex.to_owned(), zone);
    }
    Ok(view)
}

/// Each uc-dns' report (`/uc/v1/dns/status/<node>`) by node; one that does
/// not parse is kept as the parse error.
async fn dns_statuses(
    store: &mut Client,
) -> Result<BTreeMap<String, Result<DnsServerStatus, String>>, etcd_client::Error> {
    let prefix = Some(GetOptions::new().with_prefix());
    let found = store.get(keys::dns_status_prefix(), prefix).await?;
    let mut statuses = BTreeMap::new();
    for kv in found.kvs() {
        let Some(Key::DnsServerStatus { node }) = kv.key_str().ok().and_then(keys::parse) else {
            continue;
        };
        let status = serde_json::from_slice(kv.value()).map_err(|err| err.to_string());
        statuses.insert(node.to_owned(), status);
    }
    Ok(statuses)
}

/// What `status` says of zone `apex`.
fn zone_report(status: &Result<DnsServerStatus, String>, apex: &str) -> DnsServerReport {
    match status {
        Ok(status) => {
            let served = status.zones.get(apex.trim_end_matches('.'));
            DnsServerReport {
                health: status.health.clone(),
                serial: served.map(|z| z.serial),
                signed: served.is_some_and(|z| z.signed),
                store_lag: status.store_lag,
                last_error: status.last_error.clone(),
            }
        }
        Err(err) => DnsServerReport {
            health: "unreadable".to_owned(),
            serial: None,
            signed: false,
            store_lag: 0,
            last_error: Some(format!("the report does not parse: {err}")),
        },
    }
}

/// One zone's declared records: what `uc dns records <zone>` reads.
async fn dns_zone(State(store): State<Store>, Path(apex): Path<String>) -> Response {
    let Some(mut store) = store.get().cloned() else {
        return store_unreachable();
    };
    let apex = apex.trim_end_matches('.').to_owned();
    let found = match store.get(keys::dns_zone(&apex), None).await {
        Ok(found) => found,
        Err(err) => return error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    };
    let Some(kv) = found.kvs().first() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no zone {apex} in the store (see GET /api/v1/dns)"),
        );
    };
    match serde_json::from_slice::<Zone>(kv.value()) {
        Ok(zone) => json(
            StatusCode::OK,
            &DnsZoneRecords {
                apex,
                revision: kv.mod_revision(),
                records: zone.records,
                ptr_patterns: zone.ptr_patterns,
            },
        ),
        Err(err) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("zone {apex}: the declaration in the store does not parse: {err}"),
        ),
    }
}

/// `cordon` (no new instances), `drain` (and move its instances away, at
/// most each service's maxUnavailable at a time), `uncordon`.
async fn node_action(
    State(store): State<Store>,
    Path((node, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(mut store) = store.get().cloned() else {
        return store_unreachable();
    };
    let reason = serde_json::from_slice::<NodeActionRequest>(&body)
        .ok()
        .and_then(|r| r.reason);
    let current = match get_json::<ManifestRevision>(&mut store, &keys::manifest_current()).await {
        Ok(Some((current, _))) => current,
        Ok(None) => {
            return error(
                StatusCode::CONFLICT,
                "no manifest deployed yet: nothing to cordon",
            )
        }
        Err(err) => return error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    };
    if !current.manifest.nodes.contains_key(&node) {
        let known: Vec<&str> = current.manifest.nodes.keys().map(String::as_str).collect();
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no node {node} in the deployed manifest (nodes: {})",
                known.join(", ")
            ),
        );
    }
    let key = keys::node_cordon(&node);
    let result = match action.as_str() {
        "cordon" | "drain" => {
            let cordon = NodeCordon {
                drain: action == "drain",
                reason,
                since: unix_seconds(),
            };
            store
                .put(key, serde_json::to_vec(&cordon).unwrap_or_default(), None)
                .await
                .map(drop)
        }
        "uncordon" => store.delete(key, None).await.map(drop),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown action {action}: cordon, drain or uncordon"),
            )
        }
    };
    match result {
        Ok(()) => {
            tracing::info!(%node, action, "node steered");
            json(StatusCode::OK, &NodeActionAnswer { node, action })
        }
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}
