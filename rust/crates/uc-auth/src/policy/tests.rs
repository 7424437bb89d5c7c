use super::*;
use uc_types::iam::{Group, Permission, Role, RoleBinding, ServiceAccount, Subject, Tenant, User};

fn user(name: &str, disabled: bool) -> User {
    User {
        name: name.into(),
        disabled,
        ..User::default()
    }
}

fn role(name: &str, permissions: &[&str]) -> Role {
    Role {
        name: name.into(),
        permissions: permissions
            .iter()
            .map(|p| Permission::parse(p).unwrap())
            .collect(),
    }
}

fn bind(name: &str, subject: Subject, role: &str, scope: Scope) -> RoleBinding {
    RoleBinding {
        name: name.into(),
        subject,
        role: role.into(),
        scope,
    }
}

/// acme and globex; alice edits acme's networks, bob views globex's VMs
/// through group `viewers`, carol administers the cluster, dave has no
/// binding, erin is disabled, service account `ci` creates ports in acme.
fn view() -> IamView {
    let mut v = IamView::default();
    for t in ["acme", "globex"] {
        v.tenants.insert(
            t.into(),
            Tenant {
                name: t.into(),
                ..Tenant::default()
            },
        );
    }
    for (name, disabled) in [
        ("alice", false),
        ("bob", false),
        ("carol", false),
        ("dave", false),
        ("erin", true),
    ] {
        v.users.insert(name.into(), user(name, disabled));
    }
    v.service_accounts.insert(
        "ci".into(),
        ServiceAccount {
            name: "ci".into(),
            tenant: "acme".into(),
            ..ServiceAccount::default()
        },
    );
    v.groups.insert(
        "viewers".into(),
        Group {
            name: "viewers".into(),
            members: vec![Principal::User("bob".into())],
        },
    );
    for r in [
        role(
            "net-editor",
            &["net:*:create", "net:*:read", "net:*:delete"],
        ),
        role("vm-viewer", &["vm:*:read"]),
        role("admin", &["*:*:*"]),
        role("port-maker", &["net:port:create"]),
    ] {
        v.roles.insert(r.name.clone(), r);
    }
    let t = |name: &str| Scope::Tenant(name.into());
    for b in [
        bind(
            "alice-net",
            Subject::User("alice".into()),
            "net-editor",
            t("acme"),
        ),
        bind(
            "viewers-vm",
            Subject::Group("viewers".into()),
            "vm-viewer",
            t("globex"),
        ),
        bind(
            "carol-admin",
            Subject::User("carol".into()),
            "admin",
            Scope::Cluster,
        ),
        bind(
            "erin-admin",
            Subject::User("erin".into()),
            "admin",
            Scope::Cluster,
        ),
        bind(
            "ci-ports",
            Subject::ServiceAccount("ci".into()),
            "port-maker",
            t("acme"),
        ),
    ] {
        v.bindings.insert(b.name.clone(), b);
    }
    assert_eq!(v.validate(), vec![], "the test model is consistent");
    v
}

const ALLOW: &str = "allow";

#[test]
fn decisions_follow_the_rules() {
    let view = view();
    let u = |n: &str| Principal::User(n.into());
    let sa = |n: &str| Principal::ServiceAccount(n.into());
    // (principal, tenant, service:kind:action, "allow" or the denial's text)
    let table = [
        (u("alice"), Some("acme"), "net:port:create", ALLOW),
        (u("alice"), Some("acme"), "net:network:delete", ALLOW),
        (
            u("alice"),
            Some("acme"),
            "vm:vm:create",
            "user:alice lacks vm:vm:create in tenant acme: none of its roles there grants it",
        ),
        // tenant isolation: acme's binding never reaches globex or the cluster
        (
            u("alice"),
            Some("globex"),
            "net:port:create",
            "user:alice has no role binding in tenant globex, so lacks net:port:create",
        ),
        (
            u("alice"),
            None,
            "net:port:create",
            "user:alice has no role binding in the cluster, so lacks net:port:create",
        ),
        // groups, and wildcards in the kind only
        (u("bob"), Some("globex"), "vm:volume:read", ALLOW),
        (
            u("bob"),
            Some("globex"),
            "vm:vm:delete",
            "user:bob lacks vm:vm:delete in tenant globex: none of its roles there grants it",
        ),
        (
            u("bob"),
            Some("acme"),
            "vm:vm:read",
            "user:bob has no role binding in tenant acme, so lacks vm:vm:read",
        ),
        // cluster scope reaches every tenant and the cluster's own resources
        (u("carol"), Some("acme"), "vm:vm:delete", ALLOW),
        (u("carol"), Some("globex"), "dns:record:create", ALLOW),
        (u("carol"), None, "iam:tenant:create", ALLOW),
        // no binding, disabled, unknown
        (
            u("dave"),
            Some("acme"),
            "net:port:read",
            "user:dave has no role binding in tenant acme, so lacks net:port:read",
        ),
        (
            u("erin"),
            None,
            "iam:tenant:create",
            "user:erin is disabled",
        ),
        (
            u("mallory"),
            Some("acme"),
            "net:port:read",
            "user:mallory does not exist",
        ),
        // a user and a service account of the same name are different principals
        (sa("ci"), Some("acme"), "net:port:create", ALLOW),
        (
            sa("ci"),
            Some("acme"),
            "net:port:delete",
            "sa:ci lacks net:port:delete in tenant acme: none of its roles there grants it",
        ),
        (
            sa("alice"),
            Some("acme"),
            "net:port:create",
            "sa:alice does not exist",
        ),
    ];
    for (principal, tenant, permission, expected) in table {
        let parts: Vec<&str> = permission.split(':').collect();
        let request = Request {
            tenant,
            service: parts[0],
            kind: parts[1],
            action: parts[2],
        };
        let decision = decide(&view, &principal, &request);
        let found = match &decision {
            Decision::Allow { .. } => ALLOW.to_owned(),
            Decision::Deny(denial) => denial.to_string(),
        };
        assert_eq!(found, expected, "{principal} {permission} in {tenant:?}");
    }
}

#[test]
fn an_allow_names_the_binding_and_role_and_a_denial_its_reason() {
    let view = view();
    let request = Request {
        tenant: Some("acme"),
        service: "net",
        kind: "port",
        action: "create",
    };
    assert_eq!(
        decide(&view, &Principal::User("alice".into()), &request),
        Decision::Allow {
            binding: "alice-net".into(),
            role: "net-editor".into()
        }
    );
    let reasons: Vec<&str> = ["dave", "erin", "mallory"]
        .iter()
        .map(
            |n| match decide(&view, &Principal::User((*n).into()), &request) {
                Decision::Deny(denial) => denial.reason(),
                allow => panic!("{n}: {allow}"),
            },
        )
        .collect();
    assert_eq!(reasons, ["no_binding", "disabled", "unknown_principal"]);
}

#[test]
fn a_binding_to_a_missing_role_grants_nothing() {
    let mut view = view();
    view.roles.remove("net-editor");
    let request = Request {
        tenant: Some("acme"),
        service: "net",
        kind: "port",
        action: "read",
    };
    assert!(matches!(
        decide(&view, &Principal::User("alice".into()), &request),
        Decision::Deny(Denial::MissingPermission { .. })
    ));
}
