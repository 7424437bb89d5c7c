//! Who a login request proves to be: a pure function of the identity model
//! (`authenticate`), and the tenants a token names (`tenants_of`). The
//! client only ever hears "invalid credentials"; the reason goes to the
//! audit log and the metrics.

use uc_types::iam::{ApiKey, IamView, LoginRequest, Principal, Scope};

use crate::credentials::{password_credential, password_matches, secret_hash, ApiKeyText};

/// A proven principal and the credential it used (a token's `cred`).
#[derive(Debug, PartialEq, Eq)]
pub struct Authenticated {
    pub principal: Principal,
    pub credential: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginDenied {
    #[error("the request has neither user and password nor apiKey, or both")]
    Malformed,
    #[error("{0} does not exist")]
    UnknownPrincipal(String),
    #[error("{0} is disabled")]
    Disabled(String),
    #[error("wrong password for {0}")]
    BadPassword(String),
    #[error("{0} has no password (API keys only)")]
    NoPassword(String),
    #[error("API key {0} is unknown or its secret is wrong")]
    BadApiKey(String),
    #[error("API key {0} has expired")]
    ExpiredApiKey(String),
}

impl LoginDenied {
    pub fn reason(&self) -> &'static str {
        match self {
            LoginDenied::Malformed => "malformed",
            LoginDenied::UnknownPrincipal(_) => "unknown_principal",
            LoginDenied::Disabled(_) => "disabled",
            LoginDenied::BadPassword(_) | LoginDenied::NoPassword(_) => "bad_password",
            LoginDenied::BadApiKey(_) => "bad_api_key",
            LoginDenied::ExpiredApiKey(_) => "expired_api_key",
        }
    }
}

/// Checks `request` against `view` at `now` (argon2 for a password: call it
/// off the async runtime).
pub fn authenticate(
    view: &IamView,
    request: &LoginRequest,
    now: u64,
) -> Result<Authenticated, LoginDenied> {
    match request {
        LoginRequest {
            user: Some(name),
            password: Some(password),
            api_key: None,
        } => {
            let subject = Principal::User(name.clone()).subject();
            let user = view
                .users
                .get(name)
                .ok_or(LoginDenied::UnknownPrincipal(subject.clone()))?;
            if user.disabled {
                return Err(LoginDenied::Disabled(subject));
            }
            let hash = user
                .password_hash
                .as_deref()
                .ok_or(LoginDenied::NoPassword(subject.clone()))?;
            if !password_matches(password, hash) {
                return Err(LoginDenied::BadPassword(subject));
            }
            Ok(Authenticated {
                principal: Principal::User(name.clone()),
                credential: password_credential(name),
            })
        }
        LoginRequest {
            user: None,
            password: None,
            api_key: Some(text),
        } => {
            let key =
                ApiKeyText::parse(text).ok_or(LoginDenied::BadApiKey("(malformed)".into()))?;
            let subject = key.principal.subject();
            let (keys, disabled): (&[ApiKey], bool) = match &key.principal {
                Principal::User(name) => {
                    view.users.get(name).map(|u| (&u.api_keys[..], u.disabled))
                }
                Principal::ServiceAccount(name) => view
                    .service_accounts
                    .get(name)
                    .map(|s| (&s.api_keys[..], s.disabled)),
            }
            .ok_or(LoginDenied::UnknownPrincipal(subject.clone()))?;
            if disabled {
                return Err(LoginDenied::Disabled(subject));
            }
            let stored = keys
                .iter()
                .find(|k| k.id == key.id && k.secret_hash == secret_hash(&key.secret))
                .ok_or(LoginDenied::BadApiKey(key.id.clone()))?;
            if stored.expires_at.is_some_and(|at| now >= at) {
                return Err(LoginDenied::ExpiredApiKey(key.id));
            }
            Ok(Authenticated {
                principal: key.principal,
                credential: key.id,
            })
        }
        _ => Err(LoginDenied::Malformed),
    }
}

/// The tenants `principal` has a binding in (directly or through a group);
/// `*` for a cluster-scoped binding.
pub fn tenants_of(view: &IamView, principal: &Principal) -> Vec<String> {
    let mut tenants: Vec<String> = view
        .bindings_of(principal)
        .map(|b| match &b.scope {
            Scope::Cluster => "*".to_owned(),
            Scope::Tenant(tenant) => tenant.clone(),
        })
        .collect();
    tenants.sort();
    tenants.dedup();
    tenants
}
