//! The policy decision: `decide(view, principal, request)`. Rules:
//!
//! 1. A principal unknown to the view, or disabled, is denied.
//! 2. A binding applies to a principal when its subject names the principal
//!    or a group the principal is a member of.
//! 3. A binding scoped to the cluster applies to every request; one scoped
//!    to tenant `t` only to requests in tenant `t` (never another tenant,
//!    never cluster-level requests).
//! 4. The request is allowed when an applying binding's role has a
//!    permission covering `<service>:<kind>:<action>` (`*` matches any part);
//!    the first such binding in name order is named in the decision.
//! 5. Otherwise denied, naming the permission that was missing and whether
//!    the principal had any binding in the scope at all.

use std::fmt;

use uc_types::iam::{IamView, Principal, Scope};

/// What is asked: an action on a kind of resource of a service, in a
/// tenant (`None`: the cluster's own resources, e.g. tenants themselves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub tenant: Option<&'a str>,
    pub service: &'a str,
    pub kind: &'a str,
    pub action: &'a str,
}

impl Request<'_> {
    /// The permission this request needs, e.g. `net:port:create`.
    pub fn permission(&self) -> String {
        format!("{}:{}:{}", self.service, self.kind, self.action)
    }

    fn place(&self) -> String {
        match self.tenant {
            Some(tenant) => format!("tenant {tenant}"),
            None => "the cluster".to_owned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow { binding: String, role: String },
    Deny(Denial),
}

/// Why a request was denied; its text names the missing permission.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("{principal} does not exist")]
    UnknownPrincipal { principal: String },
    #[error("{principal} is disabled")]
    Disabled { principal: String },
    #[error("{principal} has no role binding in {place}, so lacks {permission}")]
    NoBinding {
        principal: String,
        place: String,
        permission: String,
    },
    #[error("{principal} lacks {permission} in {place}: none of its roles there grants it")]
    MissingPermission {
        principal: String,
        place: String,
        permission: String,
    },
}

impl Denial {
    /// A short label for metrics (`denials_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::UnknownPrincipal { .. } => "unknown_principal",
            Denial::Disabled { .. } => "disabled",
            Denial::NoBinding { .. } => "no_binding",
            Denial::MissingPermission { .. } => "missing_permission",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow { binding, role } => {
                write!(f, "allowed by binding {binding} (role {role})")
            }
            Decision::Deny(denial) => write!(f, "denied: {denial}"),
        }
    }
}

pub fn decide(view: &IamView, principal: &Principal, request: &Request) -> Decision {
    let who = principal.subject();
    let disabled = match principal {
        Principal::User(name) => view.users.get(name).map(|u| u.disabled),
        Principal::ServiceAccount(name) => view.service_accounts.get(name).map(|s| s.disabled),
    };
    match disabled {
        None => return Decision::Deny(Denial::UnknownPrincipal { principal: who }),
        Some(true) => return Decision::Deny(Denial::Disabled { principal: who }),
        Some(false) => {}
    }
    let mut any_binding = false;
    for binding in view.bindings_of(principal) {
        let in_scope = match &binding.scope {
            Scope::Cluster => true,
            Scope::Tenant(tenant) => request.tenant == Some(tenant.as_str()),
        };
        if !in_scope {
            continue;
        }
        any_binding = true;
        let Some(role) = view.roles.get(&binding.role) else {
            continue;
        };
        if role
            .permissions
            .iter()
            .any(|p| p.covers(request.service, request.kind, request.action))
        {
            return Decision::Allow {
                binding: binding.name.clone(),
                role: role.name.clone(),
            };
        }
    }
    let (principal, place, permission) = (who, request.place(), request.permission());
    Decision::Deny(if any_binding {
        Denial::MissingPermission {
            principal,
            place,
            permission,
        }
    } else {
        Denial::NoBinding {
            principal,
            place,
            permission,
        }
    })
}

#[cfg(test)]
mod tests;
