//! Phone-home: a machine booted from the installer reports its hardware; a
//! declared node recognised by its identity gets its install plan, an unknown
//! machine is recorded as pending. Enrollment needs the cluster's token.

use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use uc_types::{keys, ManifestRevision, Role};

use crate::api::{error, json};
use crate::store::{get_json, Store};
use uc_types::unix_seconds;

#[derive(Clone)]
pub(crate) struct PhoneHome {
    pub(crate) store: Store,
    /// Read at every request, so a rotated token takes effect at once.
    pub(crate) token_file: PathBuf,
    /// Keys the plan tells the installer to trust (cluster.deployer.cache.publicKeys).
    pub(crate) public_keys: Vec<String>,
}

/// What the installer reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct HardwareFacts {
    pub(crate) mac_addresses: Vec<String>,
    pub(crate) dmi_serial: Option<String>,
    #[serde(default)]
    pub(crate) disks: Vec<String>,
}

/// What a recognised machine is told to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InstallPlan {
    pub(crate) node: String,
    /// disko `devices` tree.
    pub(crate) disko: serde_json::Value,
    /// The NixOS system to install.
    pub(crate) system: String,
    pub(crate) cache_urls: Vec<String>,
    pub(crate) trusted_public_keys: Vec<String>,
    pub(crate) store_endpoints: Vec<String>,
}

/// An unknown machine, kept under `/uc/v1/pending/<id>` for the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PendingMachine {
    pub(crate) id: String,
    pub(crate) facts: HardwareFacts,
    pub(crate) first_seen: u64,
    pub(crate) last_seen: u64,
}

pub(crate) fn router(state: PhoneHome) -> Router {
    Router::new()
        .route("/api/v1/phone-home", post(phone_home))
        .route("/api/v1/pending", get(pending))
        .with_state(state)
}

/// `POST /api/v1/phone-home`'s answer to a machine it does not know.
#[derive(Serialize)]
struct Pending {
    /// Its id under `/uc/v1/pending/`.
    pending: String,
    reason: String,
}

/// Compares without an early exit, so timing does not reveal the token.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn normalise(facts: &mut HardwareFacts) {
    for mac in &mut facts.mac_addresses {
        *mac = mac.to_ascii_lowercase();
    }
}

async fn phone_home(State(state): State<PhoneHome>, headers: HeaderMap, body: Bytes) -> Response {
    let expected = match std::fs::read_to_string(&state.token_file) {
        Ok(token) => token.trim().to_owned(),
        Err(err) => {
            tracing::error!(file = %state.token_file.display(), %err, "cannot read the enrollment token; refusing phone-home");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the deployer has no enrollment token configured",
            );
        }
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if expected.is_empty() || !same_secret(given.as_bytes(), expected.as_bytes()) {
        tracing::warn!(
            presented = !given.is_empty(),
            "phone-home refused: wrong enrollment token"
        );
        return error(
            StatusCode::UNAUTHORIZED,
            "wrong or missing enrollment token (Authorization: Bearer <token>)",
        );
    }
    let mut facts: HardwareFacts = match serde_json::from_slice(&body) {
        Ok(facts) => facts,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not hardware facts {{macAddresses, dmiSerial, disks}}: {err}"),
            )
        }
    };
    normalise(&mut facts);
    if facts.mac_addresses.is_empty() && facts.dmi_serial.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "no macAddresses and no dmiSerial: nothing to recognise the machine by",
        );
    }
    let Some(mut store) = state.store.get().cloned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not reachable yet",
        );
    };
    let current: Option<(ManifestRevision, i64)> =
        match get_json(&mut store, &keys::manifest_current()).await {
            Ok(current) => current,
            Err(err) => return error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
        };
    let Some((current, _)) = current else {
        return record_pending(&mut store, facts, "no manifest deployed yet").await;
    };
    let manifest = &current.manifest;

    let matches: Vec<&String> = manifest
        .nodes
        .iter()
        .filter(|(_, node)| {
            node.identity
                .mac_addresses
                .iter()
                .any(|m| facts.mac_addresses.contains(&m.to_ascii_lowercase()))
                || (node.identity.dmi_serial.is_some()
                    && node.identity.dmi_serial == facts.dmi_serial)
        })
        .map(|(name, _)| name)
        .collect();
    let name = match matches.as_slice() {
        [] => return record_pending(&mut store, facts, "matches no declared node").await,
        [one] => (*one).clone(),
        many => {
            tracing::error!(?facts, nodes = ?many, "phone-home matches several nodes; refusing");
            return error(
                StatusCode::CONFLICT,
                format!(
                    "these facts match several nodes ({}); fix their identities in cluster.nodes",
                    many.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    };
    let node = &manifest.nodes[&name];
    let Some(install) = &node.install else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("node {name} has no install plan: set cluster.nodes.{name}.install"),
        );
    };
    let Some(system) = current.systems.get(&name) else {
        return error(
            StatusCode::CONFLICT,
            format!(
                "no system deployed for node {name} yet: `uc deploy` one with --system {name}=..."
            ),
        );
    };
    let cache_urls = manifest
        .nodes
        .values()
        .filter(|n| n.roles.contains(&Role::ControlPlane))
        .filter_map(|n| n.daemons.deployer.as_ref())
        .map(|d| format!("http://{}", d.http_listen))
        .collect();
    let plan = InstallPlan {
        node: name.clone(),
        disko: install.disko.clone(),
        system: system.clone(),
        cache_urls,
        trusted_public_keys: state.public_keys.clone(),
        store_endpoints: manifest
            .store
            .members
            .iter()
            .map(|m| m.client_url.clone())
            .collect(),
    };
    tracing::info!(node = %name, system = %plan.system, "phone-home: install plan handed out");
    json(StatusCode::OK, &plan)
}

async fn record_pending(
    store: &mut etcd_client::Client,
    facts: HardwareFacts,
    why: &str,
) -> Response {
    let id = facts
        .mac_addresses
        .first()
        .map(|m| m.replace(':', "-"))
        .or_else(|| {
            facts
                .dmi_serial
                .clone()
                .map(|s| s.chars().filter(char::is_ascii_alphanumeric).collect())
        })
        .unwrap_or_default();
    let key = keys::pending_machine(&id);
    let first_seen = match get_json::<PendingMachine>(store, &key).await {
        Ok(Some((known, _))) => known.first_seen,
        Ok(None) => unix_seconds(),
        Err(err) => return error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    };
    let pending = PendingMachine {
        id: id.clone(),
        facts,
        first_seen,
        last_seen: unix_seconds(),
    };
    if let Err(err) = store
        .put(key, serde_json::to_vec(&pending).unwrap_or_default(), None)
        .await
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, err.to_string());
    }
    tracing::warn!(
        id,
        why,
        "phone-home from an unknown machine; recorded as pending"
    );
    json(
        StatusCode::ACCEPTED,
        &Pending {
            pending: id,
            reason: format!("this machine {why}; declare it in cluster.nodes with its MAC address or DMI serial and deploy"),
        },
    )
}

async fn pending(State(state): State<PhoneHome>) -> Response {
    let Some(mut store) = state.store.get().cloned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not reachable yet",
        );
    };
    let options = etcd_client::GetOptions::new().with_prefix();
    match store.get(keys::pending_prefix(), Some(options)).await {
        Ok(response) => {
            let machines: Vec<PendingMachine> = response
                .kvs()
                .iter()
                .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
                .collect();
            json(StatusCode::OK, &machines)
        }
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}
