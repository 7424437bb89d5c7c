//! Credential rotation: `POST /v1/api-keys` makes a new API key for a user
//! or service account (its secret answered once, its SHA-256 stored);
//! `DELETE /v1/api-keys/<id>` removes one and revokes it, so the tokens it
//! was used for are refused within the verifiers' watch delay. A key is
//! rotated by making the new one, switching the client, deleting the old.
//! One's own keys need no permission; anyone's need `iam:api-key:create` /
//! `iam:api-key:delete` in the cluster scope.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Serialize;
use uc_daemon::http::json_response;
use uc_types::iam::{
    ApiKey, ApiKeyRequest, CreatedApiKey, Principal, Revocation, ServiceAccount, User,
};
use uc_types::{keys, unix_seconds};

use crate::credentials::{random_bytes, random_secret, secret_hash, ApiKeyText};
use crate::daemon::State;
use crate::http::{authorize, bearer, body, internal, ApiError};
use crate::store;

/// A document holding API keys.
trait KeyHolder: Serialize + DeserializeOwned {
    fn api_keys(&mut self) -> &mut Vec<ApiKey>;
}

impl KeyHolder for User {
    fn api_keys(&mut self) -> &mut Vec<ApiKey> {
        &mut self.api_keys
    }
}

impl KeyHolder for ServiceAccount {
    fn api_keys(&mut self) -> &mut Vec<ApiKey> {
        &mut self.api_keys
    }
}

/// Applies `edit` to the keys of `principal`'s document, retrying when
/// another writer got there first; `false` when the principal does not exist.
async fn edit_keys(
    state: &State,
    principal: &Principal,
    edit: impl Fn(&mut Vec<ApiKey>),
) -> Result<bool, ApiError> {
    match principal {
        Principal::User(name) => {
            edit_document::<User>(state, &keys::iam_object("users", name), edit).await
        }
        Principal::ServiceAccount(name) => {
            edit_document::<ServiceAccount>(
                state,
                &keys::iam_object("service-accounts", name),
                edit,
            )
            .await
        }
    }
}

async fn edit_document<D: KeyHolder>(
    state: &State,
    key: &str,
    edit: impl Fn(&mut Vec<ApiKey>),
) -> Result<bool, ApiError> {
    let mut client = state.client.clone();
    for _ in 0..5 {
        let Some((mut document, revision)) = store::get_versioned::<D>(&mut client, key)
            .await
            .map_err(internal)?
        else {
            return Ok(false);
        };
        edit(document.api_keys());
        if store::put_if_unchanged(&mut client, key, &document, revision)
            .await
            .map_err(internal)?
        {
            return Ok(true);
        }
    }
    Err(ApiError(
        StatusCode::CONFLICT,
        format!("{key} kept changing; try again"),
    ))
}

/// Whether `caller` may manage `owner`'s keys: its own, or with the permission.
async fn may_manage(
    state: &State,
    caller: &uc_auth::Verified,
    owner: &Principal,
    action: &str,
) -> Result<(), ApiError> {
    if caller.claims.sub == owner.subject() {
        return Ok(());
    }
    authorize(state, caller, "api-key", action).await
}

pub async fn create(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let caller = bearer(&state, &headers).await?;
    let request: ApiKeyRequest = body(&bytes)?;
    may_manage(&state, &caller, &request.principal, "create").await?;
    let suffix: String = random_bytes::<4>()
        .map_err(internal)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let text = ApiKeyText {
        principal: request.principal.clone(),
        id: format!("ak-{suffix}"),
        secret: random_secret().map_err(internal)?,
    };
    let stored = ApiKey {
        id: text.id.clone(),
        secret_hash: secret_hash(&text.secret),
        created_at: unix_seconds(),
        expires_at: request.expires_at,
    };
    if !edit_keys(&state, &request.principal, |keys| keys.push(stored.clone())).await? {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{} does not exist", request.principal),
        ));
    }
    state
        .audit
        .record(
            "api-key create",
            &caller.claims.sub,
            true,
            format!("{} for {}", text.id, request.principal),
        )
        .await;
    let created = CreatedApiKey {
        id: text.id.clone(),
        api_key: text.format(),
        expires_at: request.expires_at,
    };
    Ok(json_response(StatusCode::CREATED, &created))
}

pub async fn delete(
    Extract(state): Extract<Arc<State>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = bearer(&state, &headers).await?;
    let view = store::load_view(&mut state.client.clone())
        .await
        .map_err(internal)?;
    let has = |keys: &[ApiKey]| keys.iter().any(|k| k.id == id);
    let owner = view
        .users
        .values()
        .find(|u| has(&u.api_keys))
        .map(|u| Principal::User(u.name.clone()))
        .or_else(|| {
            view.service_accounts
                .values()
                .find(|s| has(&s.api_keys))
                .map(|s| Principal::ServiceAccount(s.name.clone()))
        })
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no API key {id:?}")))?;
    may_manage(&state, &caller, &owner, "delete").await?;
    edit_keys(&state, &owner, |keys| keys.retain(|k| k.id != id)).await?;
    // Tokens issued for the key are refused from now until they expire.
    let now = unix_seconds();
    let revocation = Revocation {
        revoked_at: now,
        until: now + state.retired_key_lifetime(),
        reason: "API key deleted".into(),
    };
    store::revoke(
        &mut state.client.clone(),
        &keys::iam_revoked_credential(&id),
        &revocation,
    )
    .await
    .map_err(internal)?;
    state
        .audit
        .record(
            "api-key delete",
            &caller.claims.sub,
            true,
            format!("{id} of {owner}"),
        )
        .await;
    Ok(json_response(StatusCode::OK, &revocation))
}
