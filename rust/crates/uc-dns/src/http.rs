//! `/health` and `/metrics` on the HTTP listener.
//!
//! `/health` is 200 with `"status": "ok"`, or 200 with `"degraded"` while
//! the store is unreachable (queries are still answered from the last
//! snapshot, so a load balancer should keep sending them), and 503 with
//! `"starting"` until the first snapshot (every query is REFUSED then).
//! A zone declared signed whose key cannot be read makes it `"degraded"`
//! too (the zone is served unsigned). `/dnssec/<zone>/ds` is the DS record
//! of a signed zone, for the parent zone's operator.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use uc_daemon::http::{json_response, metrics_response};

use crate::metrics::Metrics;
use crate::snapshot::Published;
use crate::status::{Health, SyncStatus};

#[derive(Clone)]
pub struct Shared {
    pub published: Arc<Published>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<SyncStatus>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthBody {
    status: &'static str,
    /// Served zones, by apex.
    zones: Vec<String>,
    /// Store revision of the served snapshot.
    revision: i64,
    last_sync_age_seconds: Option<f64>,
    error: Option<String>,
    /// The DS of each signed zone, by apex.
    dnssec: std::collections::BTreeMap<String, String>,
    /// Zones declared signed but served unsigned: their key is unreadable.
    dnssec_problems: Vec<DnssecProblem>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DnssecProblem {
    zone: String,
    key_file: String,
    error: String,
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/dnssec/{zone}/ds", get(ds))
        .layer(axum::middleware::from_fn(uc_daemon::http::request_span))
        .with_state(shared)
}

async fn health(State(shared): State<Shared>) -> impl IntoResponse {
    let snapshot = shared.published.load();
    let health = shared.status.health(snapshot.generation > 0);
    let mut zones: Vec<String> = snapshot.zones().map(|z| z.apex.to_string()).collect();
    zones.sort();
    let dnssec = snapshot
        .signers()
        .map(|signer| (signer.apex.to_string(), signer.key.ds_line(&signer.apex)))
        .collect();
    let dnssec_problems: Vec<DnssecProblem> = snapshot
        .key_problems
        .iter()
        .map(|problem| DnssecProblem {
            zone: problem.zone.clone(),
            key_file: problem.key_file.clone(),
            error: problem.error.clone(),
        })
        .collect();
    let status = match health {
        Health::Ok if !dnssec_problems.is_empty() => "degraded",
        _ => health.as_str(),
    };
    let body = HealthBody {
        status,
        zones,
        revision: snapshot.revision,
        last_sync_age_seconds: shared.status.since_contact().map(|age| age.as_secs_f64()),
        error: shared.status.last_error(),
        dnssec,
        dnssec_problems,
    };
    let code = match health {
        Health::Starting => StatusCode::SERVICE_UNAVAILABLE,
        Health::Ok | Health::Degraded => StatusCode::OK,
    };
    json_response(code, &body)
}

/// The DS of signed zone `zone` in presentation format (text), or 404
/// saying why there is none.
async fn ds(State(shared): State<Shared>, Path(zone): Path<String>) -> impl IntoResponse {
    let snapshot = shared.published.load();
    let apex = format!("{}.", zone.trim_end_matches('.'));
    let signer = hickory_server::proto::rr::Name::from_ascii(&apex)
        .ok()
        .and_then(|name| snapshot.signer(&name.into()).cloned());
    if let Some(signer) = signer {
        return (
            StatusCode::OK,
            format!("{}\n", signer.key.ds_line(&signer.apex)),
        );
    }
    let problem = snapshot
        .key_problems
        .iter()
        .find(|p| p.zone.trim_end_matches('.') == zone.trim_end_matches('.'));
    let why = match problem {
        Some(p) => format!(
            "{zone} is served unsigned: its key {} cannot be read: {}\n",
            p.key_file, p.error
        ),
        None => format!("{zone} is not a signed zone served here\n"),
    };
    (StatusCode::NOT_FOUND, why)
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    // Never in contact: the age is at least the time since start.
    let age = shared
        .status
        .since_contact()
        .unwrap_or_else(|| shared.status.uptime())
        .as_secs_f64();
    shared.metrics.last_sync_age.set(age);
    let snapshot = shared.published.load();
    // Zones as uc_dns_zone_serial names them: with the final dot.
    let signed = snapshot.signers().map(|s| (s.apex.to_string(), true));
    let unsigned = snapshot
        .key_problems
        .iter()
        .map(|p| (format!("{}.", p.zone.trim_end_matches('.')), false));
    let zones: Vec<(String, bool)> = signed.chain(unsigned).collect();
    let kept = snapshot.signers().map(|s| s.kept_count()).sum();
    shared.metrics.set_dnssec(&zones, kept);
    metrics_response(shared.metrics.render())
}
