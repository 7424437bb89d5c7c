//! The identity model uc-iam keeps and every daemon's policy check reads:
//! tenants with quotas, users and service accounts with their credentials,
//! groups, roles made of permissions, and bindings of a subject to a role in
//! a scope. Stored one document per key under `/uc/v1/iam/` (see
//! [`crate::keys`] and docs/iam.md):
//!
//! ```text
//! /uc/v1/iam/tenants/<tenant>              Tenant
//! /uc/v1/iam/users/<user>                  User
//! /uc/v1/iam/service-accounts/<name>       ServiceAccount
//! /uc/v1/iam/groups/<group>                Group
//! /uc/v1/iam/roles/<role>                  Role
//! /uc/v1/iam/bindings/<binding>            RoleBinding
//! /uc/v1/iam/signing-keys/<kid>            SigningKeyRecord (public half only)
//! /uc/v1/iam/revoked/tokens/<jti>          Revocation, on a lease ending when the token expires
//! /uc/v1/iam/revoked/credentials/<id>      Revocation of an API key or password
//! /uc/v1/iam/audit/<unix-ms>-<seq>         AuditRecord, on a lease (bounded retention)
//! ```
//!
//! Secrets never appear here: a password is an argon2 PHC string, an API key
//! the SHA-256 of its random secret.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Problem;

/// A project: the unit of isolation. Tenant-scoped bindings reach only
/// resources under `/uc/v1/tenants/<name>/`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tenant {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub quota: Quota,
}

/// How much a tenant may hold; `None` is unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Quota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Virtual CPUs over all the tenant's VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u64>,
    /// MiB of memory over all the tenant's VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
}

/// A person who logs in with a password and/or API keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct User {
    pub name: String,
    /// Argon2id in PHC form (`$argon2id$v=19$m=…`); absent: no password login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKey>,
    /// A disabled user keeps its bindings but gets no token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// A machine identity living in one tenant; logs in with API keys only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceAccount {
    pub name: String,
    pub tenant: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKey>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// An API key as stored: its id (the public part of the key the client
/// holds, unique in the cluster) and the SHA-256 of its secret part. A key
/// is 32 random bytes, so a fast hash is as safe as a slow one here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    /// `sha256:<64 lowercase hex digits>`.
    pub secret_hash: String,
    pub created_at: u64,
    /// Unix seconds after which the key is refused; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Group {
    pub name: String,
    #[serde(default)]
    pub members: Vec<Principal>,
}

/// A named set of permissions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Role {
    pub name: String,
    pub permissions: Vec<Permission>,
}

/// Grants `role` to `subject` within `scope`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleBinding {
    pub name: String,
    pub subject: Subject,
    pub role: String,
    pub scope: Scope,
}

/// Who is acting: what a token's `sub` names (`user:alice`, `sa:ci`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    tag = "kind",
    content = "name"
)]
pub enum Principal {
    User(String),
    ServiceAccount(String),
}

/// Whom a binding names: a principal directly or every member of a group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    tag = "kind",
    content = "name"
)]
pub enum Subject {
    User(String),
    ServiceAccount(String),
    Group(String),
}

/// Where a binding applies: every tenant and the cluster's own resources,
/// or one tenant's resources only.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum Scope {
    Cluster,
    Tenant(String),
}

impl Principal {
    /// The token subject: `user:<name>` or `sa:<name>`.
    pub fn subject(&self) -> String {
        match self {
            Principal::User(name) => format!("user:{name}"),
            Principal::ServiceAccount(name) => format!("sa:{name}"),
        }
    }

    /// Reads a token subject back.
    pub fn from_subject(subject: &str) -> Option<Principal> {
        let (kind, name) = subject.split_once(':')?;
        if !is_name(name) {
            return None;
        }
        match kind {
            "user" => Some(Principal::User(name.to_owned())),
            "sa" => Some(Principal::ServiceAccount(name.to_owned())),
            _ => None,
        }
    }

    /// Whether a binding's subject names this principal directly.
    pub fn is(&self, subject: &Subject) -> bool {
        match (self, subject) {
            (Principal::User(a), Subject::User(b)) => a == b,
            (Principal::ServiceAccount(a), Subject::ServiceAccount(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.subject())
    }
}

/// `<service>:<kind>:<action>`, each part lowercase letters, digits and
/// `-`, or `*` for any (`net:port:create`, `vm:*:read`, `*:*:*`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Permission {
    parts: [String; 3],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permission {text:?} is malformed: {why}; write <service>:<kind>:<action>, each lowercase letters, digits and '-', or '*' (e.g. net:port:create, vm:*:read)")]
pub struct PermissionError {
    pub text: String,
    pub why: &'static str,
}

impl Permission {
    pub fn parse(text: &str) -> Result<Permission, PermissionError> {
        let error = |why| PermissionError {
            text: text.to_owned(),
            why,
        };
        let parts: Vec<&str> = text.split(':').collect();
        let [service, kind, action] = parts[..] else {
            return Err(error("it does not have three parts"));
        };
        for part in [service, kind, action] {
            if part != "*" && !is_name(part) {
                return Err(error(
                    "a part is empty or has characters other than a-z, 0-9, '-'",
                ));
            }
        }
        Ok(Permission {
            parts: [service.to_owned(), kind.to_owned(), action.to_owned()],
        })
    }

    /// The permission a request needs (no wildcards expected, none needed).
    pub fn needed(service: &str, kind: &str, action: &str) -> String {
        format!("{service}:{kind}:{action}")
    }

    /// Whether this permission (maybe with wildcards) covers the request.
    pub fn covers(&self, service: &str, kind: &str, action: &str) -> bool {
        self.parts
            .iter()
            .zip([service, kind, action])
            .all(|(granted, asked)| granted == "*" || granted == asked)
    }
}

impl TryFrom<String> for Permission {
    type Error = PermissionError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Permission::parse(&text)
    }
}

impl From<Permission> for String {
    fn from(permission: Permission) -> String {
        permission.to_string()
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.parts[0], self.parts[1], self.parts[2])
    }
}

/// A name of the model (tenant, user, role, …): lowercase letters, digits
/// and `-`, starting with a letter or digit, at most 63 characters, so it
/// is one store key segment and one DNS label.
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The whole identity model, as uc-iam reads it from the store (or Nix
/// declares it): what a policy decision is a function of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IamView {
    pub tenants: BTreeMap<String, Tenant>,
    pub users: BTreeMap<String, User>,
    pub service_accounts: BTreeMap<String, ServiceAccount>,
    pub groups: BTreeMap<String, Group>,
    pub roles: BTreeMap<String, Role>,
    pub bindings: BTreeMap<String, RoleBinding>,
}

impl IamView {
    /// The groups `principal` is a member of.
    pub fn groups_of<'a>(&'a self, principal: &'a Principal) -> impl Iterator<Item = &'a str> {
        self.groups
            .values()
            .filter(|group| group.members.contains(principal))
            .map(|group| group.name.as_str())
    }

    /// The bindings naming `principal`, directly or through its groups.
    pub fn bindings_of<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> impl Iterator<Item = &'a RoleBinding> {
        let groups: Vec<&str> = self.groups_of(principal).collect();
        self.bindings.values().filter(move |b| match &b.subject {
            Subject::Group(group) => groups.contains(&group.as_str()),
            subject => principal.is(subject),
        })
    }

    /// Lists every inconsistency (a path and what is wrong); empty when the
    /// model is consistent. Names in the maps' keys and in the documents
    /// must agree; every name a document points at must exist.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut add = |path: String, message: String| problems.push(Problem { path, message });

        names_match(&mut add, "tenants", &self.tenants, |t| &t.name);
        names_match(&mut add, "users", &self.users, |u| &u.name);
        names_match(&mut add, "serviceAccounts", &self.service_accounts, |s| {
            &s.name
        });
        names_match(&mut add, "groups", &self.groups, |g| &g.name);
        names_match(&mut add, "roles", &self.roles, |r| &r.name);
        names_match(&mut add, "bindings", &self.bindings, |b| &b.name);

        for user in self.users.values() {
            if let Some(hash) = &user.password_hash {
                if !hash.starts_with("$argon2id$") {
                    add(
                        format!("users.{}.passwordHash", user.name),
                        "is not an argon2id PHC string ($argon2id$…): store the hash, never the password".into(),
                    );
                }
            }
        }
        let mut key_ids = BTreeSet::new();
        let keyed = self
            .users
            .values()
            .map(|u| (format!("users.{}", u.name), &u.api_keys))
            .chain(
                self.service_accounts
                    .values()
                    .map(|s| (format!("serviceAccounts.{}", s.name), &s.api_keys)),
            );
        for (path, keys) in keyed {
            for key in keys {
                let at = format!("{path}.apiKeys.{}", key.id);
                if !is_name(&key.id) {
                    add(
                        at.clone(),
                        "id must be lowercase letters, digits and '-'".into(),
                    );
                }
                if !key_ids.insert(key.id.clone()) {
                    add(
                        at.clone(),
                        "id is used by another API key: key ids are unique in the cluster".into(),
                    );
                }
                if !is_sha256(&key.secret_hash) {
                    add(
                        format!("{at}.secretHash"),
                        "is not sha256:<64 lowercase hex digits>: store the hash, never the key"
                            .into(),
                    );
                }
            }
        }
        for account in self.service_accounts.values() {
            if !self.tenants.contains_key(&account.tenant) {
                add(
                    format!("serviceAccounts.{}.tenant", account.name),
                    format!(
                        "names tenant \"{}\", which is not in tenants",
                        account.tenant
                    ),
                );
            }
        }
        for group in self.groups.values() {
            let mut seen = BTreeSet::new();
            for member in &group.members {
                let path = format!("groups.{}.members", group.name);
                if !seen.insert(member) {
                    add(path.clone(), format!("lists {member} twice"));
                }
                if !self.principal_exists(member) {
                    add(path, format!("names {member}, which does not exist"));
                }
            }
        }
        for role in self.roles.values() {
            let mut seen = BTreeSet::new();
            for permission in &role.permissions {
                if !seen.insert(permission) {
                    add(
                        format!("roles.{}.permissions", role.name),
                        format!("lists {permission} twice"),
                    );
                }
            }
        }
        for binding in self.bindings.values() {
            let at = |field: &str| format!("bindings.{}.{field}", binding.name);
            if !self.roles.contains_key(&binding.role) {
                add(
                    at("role"),
                    format!("names role \"{}\", which is not in roles", binding.role),
                );
            }
            if let Scope::Tenant(tenant) = &binding.scope {
                if !self.tenants.contains_key(tenant) {
                    add(
                        at("scope"),
                        format!("names tenant \"{tenant}\", which is not in tenants"),
                    );
                }
            }
            let exists = match &binding.subject {
                Subject::User(name) => self.users.contains_key(name),
                Subject::ServiceAccount(name) => self.service_accounts.contains_key(name),
                Subject::Group(name) => self.groups.contains_key(name),
            };
            if !exists {
                add(
                    at("subject"),
                    format!("names {:?}, which does not exist", binding.subject),
                );
            }
        }
        problems
    }

    fn principal_exists(&self, principal: &Principal) -> bool {
        match principal {
            Principal::User(name) => self.users.contains_key(name),
            Principal::ServiceAccount(name) => self.service_accounts.contains_key(name),
        }
    }
}

fn names_match<T>(
    add: &mut impl FnMut(String, String),
    section: &str,
    entries: &BTreeMap<String, T>,
    name_of: impl Fn(&T) -> &String,
) {
    for (key, name) in entries.iter().map(|(key, entry)| (key, name_of(entry))) {
        if key != name {
            add(
                format!("{section}.{key}.name"),
                format!("is \"{name}\" but the entry is stored as \"{key}\""),
            );
        } else if !is_name(name) {
            add(
                format!("{section}.{key}.name"),
                "must be 1-63 lowercase letters, digits and '-', not starting with '-'".into(),
            );
        }
    }
}

/// `sha256:` and 64 lowercase hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A published token-verification key: the public half of an Ed25519 key
/// uc-iam signs with. Stays published until every token it signed expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SigningKeyRecord {
    pub kid: String,
    /// The 32-byte Ed25519 public key, base64url without padding (RFC 8037 `x`).
    pub public_key: String,
    pub created_at: u64,
    /// Unix seconds when it stopped signing; absent while it is the current key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

/// A revoked token (by `jti`) or credential (by API key id, or
/// `password:<user>`), refused by every verifier until `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Revocation {
    pub revoked_at: u64,
    pub until: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// One grant or denial, as uc-iam writes it to the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditRecord {
    pub at_ms: u64,
    /// `login`, `revoke`, `authorize`, …
    pub action: String,
    /// The principal's subject, or what the client claimed to be.
    pub subject: String,
    pub granted: bool,
    /// Why it was denied (or what was granted).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

mod http;
pub use http::*;

#[cfg(test)]
mod tests;
