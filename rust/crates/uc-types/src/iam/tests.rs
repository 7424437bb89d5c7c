use super::*;

fn hash() -> String {
    format!("sha256:{}", "a".repeat(64))
}

fn view() -> IamView {
    let mut view = IamView::default();
    view.tenants.insert(
        "acme".into(),
        Tenant {
            name: "acme".into(),
            quota: Quota {
                vms: Some(10),
                ..Quota::default()
            },
            ..Tenant::default()
        },
    );
    view.users.insert(
        "alice".into(),
        User {
            name: "alice".into(),
            api_keys: vec![ApiKey {
                id: "ak1".into(),
                secret_hash: hash(),
                created_at: 1,
                expires_at: None,
            }],
            ..User::default()
        },
    );
    view.groups.insert(
        "ops".into(),
        Group {
            name: "ops".into(),
            members: vec![Principal::User("alice".into())],
        },
    );
    view.roles.insert(
        "viewer".into(),
        Role {
            name: "viewer".into(),
            permissions: vec![Permission::parse("vm:*:read").unwrap()],
        },
    );
    view.bindings.insert(
        "ops-view".into(),
        RoleBinding {
            name: "ops-view".into(),
            subject: Subject::Group("ops".into()),
            role: "viewer".into(),
            scope: Scope::Tenant("acme".into()),
        },
    );
    view
}

fn messages(view: &IamView) -> Vec<String> {
    view.validate().iter().map(ToString::to_string).collect()
}

#[test]
fn a_consistent_model_has_no_problems() {
    assert_eq!(messages(&view()), Vec::<String>::new());
}

#[test]
fn permissions_parse_and_cover_with_wildcards() {
    let table = [
        ("net:port:create", ("net", "port", "create"), true),
        ("net:port:create", ("net", "port", "delete"), false),
        ("vm:*:read", ("vm", "volume", "read"), true),
        ("vm:*:read", ("net", "port", "read"), false),
        ("*:*:*", ("dns", "record", "update"), true),
        ("*:port:*", ("net", "port", "delete"), true),
    ];
    for (text, (service, kind, action), covers) in table {
        let permission = Permission::parse(text).unwrap();
        assert_eq!(permission.to_string(), text);
        assert_eq!(
            permission.covers(service, kind, action),
            covers,
            "{text} {service}:{kind}:{action}"
        );
    }
}

#[test]
fn malformed_permissions_are_refused_naming_the_text() {
    for text in [
        "",
        "net:port",
        "net:port:create:x",
        "net::create",
        "Net:port:create",
        "net:po*:read",
        "net:port:cre ate",
    ] {
        let err = Permission::parse(text).unwrap_err();
        assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
        let json = format!("{{\"name\":\"r\",\"permissions\":[{text:?}]}}");
        assert!(serde_json::from_str::<Role>(&json).is_err(), "{json}");
    }
}

#[test]
fn documents_round_trip_and_deny_unknown_fields() {
    let view = view();
    let binding = &view.bindings["ops-view"];
    let json = serde_json::to_value(binding).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"name": "ops-view", "subject": {"kind": "group", "name": "ops"},
            "role": "viewer", "scope": {"tenant": "acme"}})
    );
    assert_eq!(
        &serde_json::from_value::<RoleBinding>(json).unwrap(),
        binding
    );
    let cluster: Scope = serde_json::from_str("\"cluster\"").unwrap();
    assert_eq!(cluster, Scope::Cluster);
    let user = &view.users["alice"];
    let text = serde_json::to_string(user).unwrap();
    assert_eq!(&serde_json::from_str::<User>(&text).unwrap(), user);
    assert!(serde_json::from_str::<Tenant>(r#"{"name":"acme","quota":{"gpus":1}}"#).is_err());
    assert!(serde_json::from_str::<User>(r#"{"name":"a","password":"x"}"#).is_err());
}

#[test]
fn principals_read_back_from_token_subjects() {
    for principal in [
        Principal::User("alice".into()),
        Principal::ServiceAccount("ci".into()),
    ] {
        assert_eq!(
            Principal::from_subject(&principal.subject()),
            Some(principal)
        );
    }
    for bad in ["alice", "group:ops", "user:", "user:Al ice"] {
        assert_eq!(Principal::from_subject(bad), None, "{bad}");
    }
}

#[test]
fn inconsistencies_name_the_field() {
    type Change = Box<dyn Fn(&mut IamView)>;
    let table: Vec<(&str, Change, &str)> = vec![
        (
            "unknown role",
            Box::new(|v| v.bindings.get_mut("ops-view").unwrap().role = "admin".into()),
            "bindings.ops-view.role: names role \"admin\", which is not in roles",
        ),
        (
            "unknown tenant",
            Box::new(|v| {
                v.bindings.get_mut("ops-view").unwrap().scope = Scope::Tenant("other".into())
            }),
            "bindings.ops-view.scope: names tenant \"other\"",
        ),
        (
            "unknown group",
            Box::new(|v| {
                v.bindings.get_mut("ops-view").unwrap().subject = Subject::Group("dev".into())
            }),
            "bindings.ops-view.subject: names Group(\"dev\")",
        ),
        (
            "duplicate permission",
            Box::new(|v| {
                let role = v.roles.get_mut("viewer").unwrap();
                role.permissions.push(role.permissions[0].clone());
            }),
            "roles.viewer.permissions: lists vm:*:read twice",
        ),
        (
            "duplicate member",
            Box::new(|v| {
                v.groups
                    .get_mut("ops")
                    .unwrap()
                    .members
                    .push(Principal::User("alice".into()))
            }),
            "groups.ops.members: lists user:alice twice",
        ),
        (
            "unknown member",
            Box::new(|v| {
                v.groups
                    .get_mut("ops")
                    .unwrap()
                    .members
                    .push(Principal::User("bob".into()))
            }),
            "groups.ops.members: names user:bob, which does not exist",
        ),
        (
            "duplicate key id",
            Box::new(|v| {
                let key = v.users["alice"].api_keys[0].clone();
                v.service_accounts.insert(
                    "ci".into(),
                    ServiceAccount {
                        name: "ci".into(),
                        tenant: "acme".into(),
                        api_keys: vec![key],
                        disabled: false,
                    },
                );
            }),
            "serviceAccounts.ci.apiKeys.ak1: id is used by another API key",
        ),
        (
            "plain password",
            Box::new(|v| v.users.get_mut("alice").unwrap().password_hash = Some("hunter2".into())),
            "users.alice.passwordHash: is not an argon2id PHC string",
        ),
        (
            "plain key",
            Box::new(|v| {
                v.users.get_mut("alice").unwrap().api_keys[0].secret_hash = "secret".into()
            }),
            "users.alice.apiKeys.ak1.secretHash: is not sha256",
        ),
        (
            "service account tenant",
            Box::new(|v| {
                v.service_accounts.insert(
                    "ci".into(),
                    ServiceAccount {
                        name: "ci".into(),
                        tenant: "nope".into(),
                        ..ServiceAccount::default()
                    },
                );
            }),
            "serviceAccounts.ci.tenant: names tenant \"nope\"",
        ),
        (
            "name and key differ",
            Box::new(|v| v.roles.get_mut("viewer").unwrap().name = "reader".into()),
            "roles.viewer.name: is \"reader\" but the entry is stored as \"viewer\"",
        ),
        (
            "bad name",
            Box::new(|v| {
                v.tenants.insert(
                    "Acme".into(),
                    Tenant {
                        name: "Acme".into(),
                        ..Tenant::default()
                    },
                );
            }),
            "tenants.Acme.name: must be 1-63 lowercase letters",
        ),
    ];
    for (what, change, expected) in table {
        let mut view = view();
        change(&mut view);
        let found = messages(&view);
        assert!(
            found.iter().any(|m| m.starts_with(expected)),
            "{what}: expected {expected:?} in {found:?}"
        );
    }
}
