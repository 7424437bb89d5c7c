//! The deployer's HTTP API: deploy a manifest, read and steer the rollout.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use etcd_client::Client;
use uc_types::{keys, unix_seconds, RolloutRecord, RolloutState};

use crate::deploy::{self, get_json, DeployError, DeployRequest};
use crate::rollout::compare_and_put;

/// The store client, once connected; the API answers 503 until then.
pub type Store = std::sync::Arc<tokio::sync::OnceCell<Client>>;

fn store_unreachable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store is not reachable yet".into(),
    )
}

pub fn router(store: Store) -> Router {
    Router::new()
        .route("/api/v1/deploy", post(deploy_handler))
        .route("/api/v1/rollout", get(rollout_status))
        .route("/api/v1/rollout/{action}", post(rollout_action))
        .with_state(store)
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    json(status, serde_json::json!({ "error": message }))
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
        Ok(record) => json(
            StatusCode::CREATED,
            serde_json::to_value(record).unwrap_or_default(),
        ),
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
        Ok(Some((record, _))) => json(
            StatusCode::OK,
            serde_json::to_value(record).unwrap_or_default(),
        ),
        Ok(None) => error(StatusCode::NOT_FOUND, "no rollout yet".into()),
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
        Ok(None) => return error(StatusCode::NOT_FOUND, "no rollout yet".into()),
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
            json(
                StatusCode::OK,
                serde_json::to_value(record).unwrap_or_default(),
            )
        }
        Ok(false) => error(
            StatusCode::CONFLICT,
            "the rollout changed meanwhile; retry".into(),
        ),
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}
