//! The bodies of uc-iam's HTTP API (docs/iam.md), shared by uc-iam and its
//! clients.

use serde::{Deserialize, Serialize};

use super::Principal;

/// `POST /v1/login`: a user's password, or an API key
/// (`<user|sa>.<name>.<key id>.<secret>`), never both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoginRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// A token uc-iam issued, as `POST /v1/login` answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: u64,
    pub subject: String,
    pub tenants: Vec<String>,
}

/// `POST /v1/revoke`: exactly one of a token, a token id or a credential id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RevokeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// `POST /v1/api-keys`: a new API key for `principal` (one's own without a
/// permission, anyone's with `iam:api-key:create`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeyRequest {
    pub principal: Principal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// The new key, its secret shown this once (only its hash is stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreatedApiKey {
    pub id: String,
    /// `<user|sa>.<name>.<id>.<secret>`, what `POST /v1/login` takes as `apiKey`.
    pub api_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}
