//! uc-iam's HTTP API: `POST /v1/login`, `GET /v1/keys`, `POST /v1/revoke`,
//! `GET /v1/whoami`, `POST /v1/rotate-key`, `POST /v1/api-keys`, `DELETE
//! /v1/api-keys/<id>` (api_keys.rs), and `/health`, `/metrics`.
//! Bodies are JSON types of `uc_types::iam`; errors are `{"error": …}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use uc_auth::policy::{decide, Decision, Request};
use uc_auth::token::{self, Claims, Jwk, Jwks, ISSUER};
use uc_auth::Verified;
use uc_daemon::http::{json_response, metrics_response, request_span};
use uc_store_mirror::Health;
use uc_types::iam::{IssuedToken, LoginRequest, Principal, Revocation, RevokeRequest};
use uc_types::{keys, unix_seconds};

use crate::credentials::random_bytes;
use crate::daemon::State;
use crate::login::{authenticate, tenants_of};
use crate::signing::Signer;
use crate::store;

type Shared = Extract<Arc<State>>;

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/login", post(login))
        .route("/v1/keys", get(published_keys))
        .route("/v1/revoke", post(revoke))
        .route("/v1/whoami", get(whoami))
        .route("/v1/rotate-key", post(rotate_key))
        .route("/v1/api-keys", post(crate::api_keys::create))
        .route(
            "/v1/api-keys/{id}",
            axum::routing::delete(crate::api_keys::delete),
        )
        .layer(axum::middleware::from_fn(request_span))
        .with_state(state)
}

/// A refused request: its status and what to tell the client.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(self.0, &ErrorBody { error: &self.1 });
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

pub(crate) fn internal(err: impl std::fmt::Display) -> ApiError {
    tracing::error!(%err, "request failed");
    ApiError(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
}

pub(crate) fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))
}

async fn health(Extract(state): Shared) -> Response {
    let health = state
        .mirror
        .health(state.verifier.keyset().kids().next().is_some());
    let status = if health == Health::Starting {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let kid = state.signer().kid.clone();
    json_response(
        status,
        &HealthBody {
            status: health.as_str(),
            kid,
        },
    )
}

/// `/health`: the mirror's health and the key this node signs with.
#[derive(Serialize)]
struct HealthBody {
    status: &'static str,
    kid: String,
}

async fn metrics(Extract(state): Shared) -> Response {
    metrics_response(uc_daemon::metrics::render(&state.registry))
}

/// The caller's token, verified (401 naming why not); a refusal is
/// counted and audited.
pub(crate) async fn bearer(state: &State, headers: &HeaderMap) -> Result<Verified, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let refused = match token.map(|token| state.verifier.verify(token)) {
        Some(Ok(verified)) => {
            state.metrics.verified("ok");
            return Ok(verified);
        }
        Some(Err(err)) => (err.reason(), err.to_string()),
        None => ("missing", "no Authorization: Bearer token".to_owned()),
    };
    state.metrics.verified(refused.0);
    state
        .audit
        .record("authenticate", "?", false, refused.1.clone())
        .await;
    Err(ApiError(StatusCode::UNAUTHORIZED, refused.1))
}

/// Whether the caller may do `action` on `kind` of the cluster (403 naming
/// the missing permission); both outcomes are audited.
pub(crate) async fn authorize(
    state: &State,
    caller: &Verified,
    kind: &str,
    action: &str,
) -> Result<(), ApiError> {
    let subject = &caller.claims.sub;
    let principal = Principal::from_subject(subject).ok_or_else(|| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            format!("the token's subject {subject:?} is not a principal"),
        )
    })?;
    let view = store::load_view(&mut state.client.clone())
        .await
        .map_err(internal)?;
    let request = Request {
        tenant: None,
        service: "iam",
        kind,
        action,
    };
    let decision = decide(&view, &principal, &request);
    let granted = matches!(decision, Decision::Allow { .. });
    state
        .audit
        .record(
            &format!("authorize {}", request.permission()),
            subject,
            granted,
            decision.to_string(),
        )
        .await;
    match decision {
        Decision::Allow { .. } => Ok(()),
        Decision::Deny(denial) => {
            state.metrics.deny(denial.reason());
            Err(ApiError(StatusCode::FORBIDDEN, denial.to_string()))
        }
    }
}

async fn login(Extract(state): Shared, bytes: Bytes) -> Result<Response, ApiError> {
    let request: LoginRequest = body(&bytes)?;
    let claimed = request.user.clone().map_or_else(
        || {
            request
                .api_key
                .as_deref()
                .and_then(|k| k.rsplit_once('.'))
                .map_or("?".into(), |(id, _)| id.to_owned())
        },
        |user| format!("user:{user}"),
    );
    let view = store::load_view(&mut state.client.clone())
        .await
        .map_err(internal)?;
    let now = unix_seconds();
    // argon2 takes tens of milliseconds of CPU: not on the runtime's threads.
    let checked =
        tokio::task::spawn_blocking(move || authenticate(&view, &request, now).map(|a| (view, a)))
            .await
            .map_err(internal)?;
    let (view, who) = match checked {
        Ok(found) => found,
        Err(denial) => {
            return Err(login_denied(&state, &claimed, denial.reason(), denial.to_string()).await)
        }
    };
    let revoked = store::get::<Revocation>(
        &mut state.client.clone(),
        &keys::iam_revoked_credential(&who.credential),
    )
    .await
    .map_err(internal)?;
    if revoked.is_some() {
        let detail = format!("credential {} is revoked", who.credential);
        return Err(login_denied(&state, &claimed, "credential_revoked", detail).await);
    }
    let signer = state.signer();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: who.principal.subject(),
        tenants: tenants_of(&view, &who.principal),
        iat: now,
        nbf: now,
        exp: now + state.options.token_ttl.as_secs(),
        jti: random_bytes::<16>()
            .map_err(internal)?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        cred: who.credential.clone(),
    };
    let token = token::issue(&signer.key, &signer.kid, &claims);
    state.metrics.login("granted");
    state
        .audit
        .record(
            "login",
            &claims.sub,
            true,
            format!(
                "token {} with key {} via {}",
                claims.jti, signer.kid, claims.cred
            ),
        )
        .await;
    let issued = IssuedToken {
        token,
        expires_at: claims.exp,
        subject: claims.sub,
        tenants: claims.tenants,
    };
    Ok(json_response(StatusCode::OK, &issued))
}

/// Counts and audits a refused login; the client hears only "invalid
/// credentials", so it cannot probe which names exist.
async fn login_denied(
    state: &State,
    claimed: &str,
    reason: &'static str,
    detail: String,
) -> ApiError {
    state.metrics.login(reason);
    state.audit.record("login", claimed, false, detail).await;
    ApiError(StatusCode::UNAUTHORIZED, "invalid credentials".into())
}

async fn published_keys(Extract(state): Shared) -> Result<Response, ApiError> {
    let records = store::published_keys(&mut state.client.clone())
        .await
        .map_err(internal)?;
    let keys = records
        .iter()
        .map(|r| Jwk::ed25519(&r.kid, &r.public_key))
        .collect();
    Ok(json_response(StatusCode::OK, &Jwks { keys }))
}

async fn whoami(Extract(state): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = bearer(&state, &headers).await?;
    Ok(json_response(StatusCode::OK, &caller.claims))
}

async fn revoke(
    Extract(state): Shared,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let caller = bearer(&state, &headers).await?;
    let request: RevokeRequest = body(&bytes)?;
    let now = unix_seconds();
    // Whatever a revoked id could still sign in with has expired by then.
    let outlived = now + state.retired_key_lifetime();
    let (key, until) = match &request {
        RevokeRequest {
            token: Some(token),
            jti: None,
            credential: None,
            ..
        } => {
            let target = state.verifier.verify(token).map_err(|e| {
                ApiError(StatusCode::BAD_REQUEST, format!("nothing to revoke: {e}"))
            })?;
            // Anyone may revoke their own tokens (log out).
            if target.claims.sub != caller.claims.sub {
                authorize(&state, &caller, "token", "revoke").await?;
            }
            (
                keys::iam_revoked_token(&target.claims.jti),
                target.claims.exp,
            )
        }
        RevokeRequest {
            token: None,
            jti: Some(jti),
            credential: None,
            ..
        } => {
            authorize(&state, &caller, "token", "revoke").await?;
            (keys::iam_revoked_token(jti), outlived)
        }
        RevokeRequest {
            token: None,
            jti: None,
            credential: Some(id),
            ..
        } => {
            authorize(&state, &caller, "credential", "revoke").await?;
            (keys::iam_revoked_credential(id), outlived)
        }
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "give exactly one of token, jti, credential".into(),
            ))
        }
    };
    if keys::parse(&key).is_none() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("{key} is not a valid revocation key"),
        ));
    }
    let revocation = Revocation {
        revoked_at: now,
        until,
        reason: request.reason.clone(),
    };
    store::revoke(&mut state.client.clone(), &key, &revocation)
        .await
        .map_err(internal)?;
    state
        .audit
        .record("revoke", &caller.claims.sub, true, key)
        .await;
    Ok(json_response(StatusCode::OK, &revocation))
}

/// A new signing key for this node; the old one stays published (on a
/// lease) until every token it signed has expired.
async fn rotate_key(Extract(state): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = bearer(&state, &headers).await?;
    authorize(&state, &caller, "signing-key", "rotate").await?;
    let now = unix_seconds();
    let new = Signer::generate(now).map_err(internal)?;
    let mut client = state.client.clone();
    store::publish_key(&mut client, &new.record(None), None)
        .await
        .map_err(internal)?;
    new.write(&state.options.signing_key_file)
        .map_err(internal)?;
    let record = new.record(None);
    let old = state.signer();
    state.set_signer(new);
    let keep = state.retired_key_lifetime();
    store::publish_key(&mut client, &old.record(Some(now)), Some(keep))
        .await
        .map_err(internal)?;
    tracing::info!(new = %record.kid, old = %old.kid, keep_seconds = keep, "signing key rotated");
    state
        .audit
        .record(
            "rotate-key",
            &caller.claims.sub,
            true,
            format!("{} replaces {}", record.kid, old.kid),
        )
        .await;
    Ok(json_response(StatusCode::OK, &record))
}
