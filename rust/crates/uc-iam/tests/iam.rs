//! uc-iam against a real store (uc-testkit's etcd), driven as a black box
//! over HTTP: bootstrap, login, offline verification, refusals, revocation,
//! key rotation, API keys, authorization, audit, metrics, SIGTERM.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use etcd_client::GetOptions;
use uc_auth::token::{self, Claims, Jwks};
use uc_auth::{KeySet, TokenError, Verifier};
use uc_http::header::{HeaderValue, AUTHORIZATION};
use uc_iam::credentials::secret_hash;
use uc_iam::signing::Signer;
use uc_store_mirror::MirrorStatus;
use uc_testkit::{free_port, wait_for_port, Etcd, KillOnDrop, TestDir};
use uc_types::iam::{
    ApiKey, CreatedApiKey, IssuedToken, Permission, Role, RoleBinding, Scope, ServiceAccount,
    Subject, Tenant, User,
};
use uc_types::{keys, unix_seconds};

const BIN: &str = env!("CARGO_BIN_EXE_uc-iam");

/// (status, body) of one request, with a bearer token if given.
fn call(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let method = uc_http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = uc_http::Request::new(method, format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(30));
    if !body.is_empty() {
        request = request.json(body.to_owned());
    }
    if let Some(token) = token {
        request = request.header(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
    }
    let response = request.send_blocking().unwrap();
    (response.status.as_u16(), response.text())
}

fn login(port: u16, body: &str) -> IssuedToken {
    let (status, text) = call(port, "POST", "/v1/login", None, body);
    assert_eq!(status, 200, "login {body}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Writes one document of the identity model, as uc-iam's admin would.
async fn put_doc(
    client: &mut etcd_client::Client,
    kind: &str,
    name: &str,
    value: &impl serde::Serialize,
) {
    let text = serde_json::to_string(value).unwrap();
    client
        .put(keys::iam_object(kind, name), text, None)
        .await
        .unwrap();
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

fn start(etcd: &Etcd, dir: &Path, port: u16, extra: &[&str]) -> KillOnDrop {
    let daemon = KillOnDrop::spawn(
        Command::new(BIN)
            .args([
                "--store",
                &etcd.endpoint,
                "--node",
                "cp1",
                "--http",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--signing-key-file")
            .arg(dir.join("state/signing.key"))
            .arg("--bootstrap-secret-file")
            .arg(dir.join("state/admin.secret"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("uc-iam.log")).unwrap()),
    );
    wait_for_port("uc-iam", port);
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_tokens_revocation_rotation_and_audit() {
    let dir = TestDir::new("uc-iam");
    let etcd = Etcd::start(&dir.join("etcd"));
    let mut client = etcd.client().await;
    let port = free_port();
    let mut daemon = start(&etcd, &dir, port, &[]);

    // Bootstrap: the admin's password was generated, written 0600, logged once.
    let secret_file = dir.join("state/admin.secret");
    let secret = std::fs::read_to_string(&secret_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let log = std::fs::read_to_string(dir.join("uc-iam.log")).unwrap();
    assert_eq!(
        log.matches(&secret).count(),
        1,
        "the generated password is logged once:\n{log}"
    );
    let key_mode = std::fs::metadata(dir.join("state/signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    // Login good and bad.
    let admin = login(
        port,
        &format!(r#"{{"user":"admin","password":"{secret}"}}"#),
    );
    assert_eq!(
        (admin.subject.as_str(), admin.tenants.clone()),
        ("user:admin", vec!["*".to_owned()])
    );
    for bad in [
        r#"{"user":"admin","password":"wrong"}"#,
        r#"{"user":"nobody","password":"x"}"#,
    ] {
        assert_eq!(
            call(port, "POST", "/v1/login", None, bad),
            (401, r#"{"error":"invalid credentials"}"#.into()),
            "{bad}"
        );
    }
    assert_eq!(
        call(
            port,
            "POST",
            "/v1/login",
            None,
            r#"{"user":"admin","pw":"x"}"#
        )
        .0,
        400
    );

    // The token verifies offline from the published keys alone.
    let (status, text) = call(port, "GET", "/v1/keys", None, "");
    assert_eq!(status, 200, "{text}");
    let jwks: Jwks = serde_json::from_str(&text).unwrap();
    let mut offline = KeySet::default();
    for jwk in &jwks.keys {
        assert_eq!(
            (jwk.kty.as_str(), jwk.crv.as_str(), jwk.alg.as_str()),
            ("OKP", "Ed25519", "EdDSA")
        );
        offline.insert_key(&jwk.kid, token::decode_public_key(&jwk.x).unwrap());
    }
    let verified = offline.verify(&admin.token, unix_seconds()).unwrap();
    assert_eq!(verified.claims.sub, "user:admin");
    let (status, text) = call(port, "GET", "/v1/whoami", Some(&admin.token), "");
    assert_eq!(
        (status, serde_json::from_str::<Claims>(&text).unwrap()),
        (200, verified.claims.clone())
    );

    // Expired, forged, wrong-key tokens are refused with 401 naming why.
    let (signer, _) = Signer::load_or_generate(&dir.join("state/signing.key"), 0).unwrap();
    let now = unix_seconds();
    let mut expired = verified.claims.clone();
    (expired.iat, expired.nbf, expired.exp) = (now - 100, now - 100, now - 1);
    let other = SigningKey::from_bytes(&[7; 32]);
    for (what, token, expected) in [
        (
            "expired",
            token::issue(&signer.key, &signer.kid, &expired),
            "expired",
        ),
        (
            "forged",
            token::issue(&other, &signer.kid, &verified.claims),
            "signature does not verify",
        ),
        (
            "wrong key",
            token::issue(&other, "k-unknown", &verified.claims),
            "not published",
        ),
        ("garbage", "a.b.c".to_owned(), "malformed"),
    ] {
        let (status, text) = call(port, "GET", "/v1/whoami", Some(&token), "");
        assert_eq!(status, 401, "{what}: {text}");
        assert!(text.contains(expected), "{what}: {text}");
    }
    assert_eq!(call(port, "GET", "/v1/whoami", None, "").0, 401);

    // A service account with an API key, bound in tenant acme only.
    let api_secret = "s3cret-0123456789abcdef0123456789abcdef";
    put_doc(
        &mut client,
        "tenants",
        "acme",
        &Tenant {
            name: "acme".into(),
            ..Tenant::default()
        },
    )
    .await;
    let account = ServiceAccount {
        name: "ci".into(),
        tenant: "acme".into(),
        api_keys: vec![ApiKey {
            id: "ak1".into(),
            secret_hash: secret_hash(api_secret),
            created_at: now,
            expires_at: None,
        }],
        disabled: false,
    };
    put_doc(&mut client, "service-accounts", "ci", &account).await;
    let role = Role {
        name: "port-maker".into(),
        permissions: vec![Permission::parse("net:port:create").unwrap()],
    };
    put_doc(&mut client, "roles", "port-maker", &role).await;
    let binding = RoleBinding {
        name: "ci-ports".into(),
        subject: Subject::ServiceAccount("ci".into()),
        role: "port-maker".into(),
        scope: Scope::Tenant("acme".into()),
    };
    put_doc(&mut client, "bindings", "ci-ports", &binding).await;
    let ci = login(port, &format!(r#"{{"apiKey":"sa.ci.ak1.{api_secret}"}}"#));
    assert_eq!(
        (ci.subject.as_str(), ci.tenants.clone()),
        ("sa:ci", vec!["acme".to_owned()])
    );
    assert_eq!(
        call(
            port,
            "POST",
            "/v1/login",
            None,
            r#"{"apiKey":"sa.ci.ak1.wrong"}"#
        )
        .0,
        401
    );

    // Authorization: ci may not rotate keys; the 403 names the permission.
    let (status, text) = call(port, "POST", "/v1/rotate-key", Some(&ci.token), "");
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("sa:ci has no role binding in the cluster, so lacks iam:signing-key:rotate"),
        "{text}"
    );

    // Revocation: a verifier watching the store refuses the token within 1 s.
    let verifier = Verifier::default();
    tokio::spawn(verifier.clone().watch(
        vec![etcd.endpoint.clone()],
        Arc::new(MirrorStatus::default()),
    ));
    let second = login(
        port,
        &format!(r#"{{"user":"admin","password":"{secret}"}}"#),
    );
    wait_until("the watching verifier", Duration::from_secs(10), || {
        verifier.verify(&second.token).is_ok()
    });
    let body = serde_json::json!({ "token": second.token }).to_string();
    let (status, text) = call(port, "POST", "/v1/revoke", Some(&second.token), &body);
    assert_eq!(status, 200, "{text}");
    let took = wait_until("the revocation", Duration::from_secs(1), || {
        matches!(
            verifier.verify(&second.token),
            Err(TokenError::Revoked { .. })
        )
    });
    eprintln!("revocation reached a watching verifier after {took:?}");
    assert!(call(port, "GET", "/v1/whoami", Some(&second.token), "")
        .1
        .contains("revoked"));
    assert_eq!(
        call(port, "GET", "/v1/whoami", Some(&admin.token), "").0,
        200,
        "only that token"
    );

    // Revoking ci's API key refuses its tokens and its logins.
    let (status, text) = call(
        port,
        "POST",
        "/v1/revoke",
        Some(&admin.token),
        r#"{"credential":"ak1"}"#,
    );
    assert_eq!(status, 200, "{text}");
    wait_until(
        "the credential's revocation",
        Duration::from_secs(1),
        || {
            matches!(
                verifier.verify(&ci.token),
                Err(TokenError::CredentialRevoked { .. })
            )
        },
    );
    assert_eq!(
        call(
            port,
            "POST",
            "/v1/login",
            None,
            &format!(r#"{{"apiKey":"sa.ci.ak1.{api_secret}"}}"#)
        )
        .0,
        401
    );

    // Rotation: new tokens carry the new kid, old ones stay valid; the old
    // key stays published on a lease (until every token it signed expired).
    let (status, text) = call(port, "POST", "/v1/rotate-key", Some(&admin.token), "");
    assert_eq!(status, 200, "{text}");
    let new_kid = serde_json::from_str::<serde_json::Value>(&text).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_kid, signer.kid);
    let third = login(
        port,
        &format!(r#"{{"user":"admin","password":"{secret}"}}"#),
    );
    wait_until("the new key", Duration::from_secs(1), || {
        verifier
            .verify(&third.token)
            .is_ok_and(|v| v.kid == new_kid)
    });
    assert_eq!(
        call(port, "GET", "/v1/whoami", Some(&admin.token), "").0,
        200,
        "a token of the old key"
    );
    assert!(verifier.verify(&admin.token).is_ok());
    let old = client
        .get(keys::iam_signing_key(&signer.kid), None)
        .await
        .unwrap();
    assert_ne!(old.kvs()[0].lease(), 0, "the retired key is on a lease");
    let current = client
        .get(keys::iam_signing_key(&new_kid), None)
        .await
        .unwrap();
    assert_eq!(current.kvs()[0].lease(), 0);

    // Audit: grants and denials, on a lease.
    let audit = client
        .get(
            keys::iam_audit_prefix(),
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    let records: Vec<uc_types::iam::AuditRecord> = audit
        .kvs()
        .iter()
        .map(|kv| serde_json::from_slice(kv.value()).unwrap())
        .collect();
    assert!(audit.kvs().iter().all(|kv| kv.lease() != 0));
    assert!(records.iter().any(|r| r.action == "login" && r.granted));
    assert!(records
        .iter()
        .any(|r| r.action == "login" && !r.granted && r.detail.contains("wrong password")));
    assert!(records
        .iter()
        .any(|r| r.action == "authorize iam:signing-key:rotate" && !r.granted));
    assert!(records
        .iter()
        .any(|r| r.action == "rotate-key" && r.granted));
    assert!(records
        .iter()
        .any(|r| r.action == "authenticate" && !r.granted && r.detail.contains("expired")));

    let metrics = uc_testkit::get_ok(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    uc_testkit::assert_metrics(
        &metrics,
        &[
            "uc_iam_logins_total{result=\"granted\"} 4",
            "uc_iam_logins_total{result=\"bad_password\"} 1",
            "uc_iam_logins_total{result=\"credential_revoked\"} 1",
            "uc_iam_denials_total{reason=\"no_binding\"} 1",
            "uc_iam_token_verifications_total{result=\"expired\"} 1",
            "uc_iam_token_verifications_total{result=\"bad_signature\"} 1",
            "uc_iam_token_verifications_total{result=\"revoked\"} 1",
        ],
    );
    assert!(
        uc_testkit::get_ok(&format!("http://127.0.0.1:{port}/health"))
            .unwrap()
            .contains(&new_kid)
    );
    assert!(
        daemon.terminate(Duration::from_secs(10)).success(),
        "SIGTERM: exit 0"
    );

    // A restart keeps the rotated key and does not touch the admin.
    let mut daemon = start(&etcd, &dir, port, &[]);
    assert_eq!(
        login(
            port,
            &format!(r#"{{"user":"admin","password":"{secret}"}}"#)
        )
        .tenants,
        ["*"]
    );
    assert!(
        uc_testkit::get_ok(&format!("http://127.0.0.1:{port}/health"))
            .unwrap()
            .contains(&new_kid)
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}

#[test]
fn a_missing_config_file_is_refused_naming_it() {
    let stderr =
        uc_testkit::exit_1_stderr(Command::new(BIN).args(["--config", "/nonexistent/iam.json"]));
    assert!(
        stderr.contains("uc-iam: cannot read /nonexistent/iam.json"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_key_is_unpublished_once_its_tokens_have_expired() {
    let dir = TestDir::new("uc-iam-rotation");
    let etcd = Etcd::start(&dir.join("etcd"));
    let port = free_port();
    let mut daemon = start(&etcd, &dir, port, &["--token-ttl-seconds", "5"]);
    let secret = std::fs::read_to_string(dir.join("state/admin.secret")).unwrap();
    let password = format!(r#"{{"user":"admin","password":"{}"}}"#, secret.trim());
    let verifier = Verifier::default();
    tokio::spawn(verifier.clone().watch(
        vec![etcd.endpoint.clone()],
        Arc::new(MirrorStatus::default()),
    ));
    let old = login(port, &password);
    wait_until("the first key", Duration::from_secs(10), || {
        verifier.verify(&old.token).is_ok()
    });
    let old_kid = verifier.verify(&old.token).unwrap().kid;

    let (status, text) = call(port, "POST", "/v1/rotate-key", Some(&old.token), "");
    assert_eq!(status, 200, "{text}");
    let new = login(port, &password);
    wait_until("the new key", Duration::from_secs(1), || {
        verifier.verify(&new.token).is_ok()
    });
    assert!(
        verifier.verify(&old.token).is_ok(),
        "the old key's token is still valid after the rotation"
    );

    // Token TTL 5 s: the retired key's lease is 5 + 10 s; then it is gone.
    let rotated = Instant::now();
    wait_until("the retired key's removal", Duration::from_secs(25), || {
        verifier.keyset().kids().all(|kid| kid != old_kid)
    });
    eprintln!(
        "retired key unpublished {:?} after the rotation",
        rotated.elapsed()
    );
    assert!(
        unix_seconds() >= old.expires_at + 5,
        "not before every token it signed expired (and the verifiers' 5 s leeway)"
    );
    let fresh = login(port, &password);
    assert!(verifier.verify(&fresh.token).is_ok(), "the new key stays");
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}

#[test]
fn it_runs_from_the_config_file_nix_renders() {
    let dir = TestDir::new("uc-iam-config");
    let etcd = Etcd::start(&dir.join("etcd"));
    let port = free_port();
    let config = serde_json::json!({
        "schemaVersion": uc_types::SCHEMA_VERSION,
        "cluster": "test",
        "node": "cp1",
        "httpListen": format!("127.0.0.1:{port}"),
        "storeEndpoints": [etcd.endpoint],
        "signingKeyFile": dir.join("state/signing.key"),
        "bootstrapAdminSecretFile": dir.join("state/admin.secret"),
        "tokenTtlSeconds": 60,
        "auditRetentionSeconds": 3600,
    });
    let file = dir.join("iam.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let mut daemon = KillOnDrop::spawn(
        Command::new(BIN)
            .arg("--config")
            .arg(&file)
            .stderr(Stdio::null()),
    );
    wait_for_port("uc-iam", port);
    let secret = std::fs::read_to_string(dir.join("state/admin.secret")).unwrap();
    let issued = login(
        port,
        &format!(r#"{{"user":"admin","password":"{}"}}"#, secret.trim()),
    );
    assert!(
        issued.expires_at <= unix_seconds() + 60,
        "tokenTtlSeconds from the file"
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_rotate_without_a_gap() {
    let dir = TestDir::new("uc-iam-api-keys");
    let etcd = Etcd::start(&dir.join("etcd"));
    let mut client = etcd.client().await;
    let port = free_port();
    let mut daemon = start(&etcd, &dir, port, &[]);
    let secret = std::fs::read_to_string(dir.join("state/admin.secret")).unwrap();
    let admin = login(
        port,
        &format!(r#"{{"user":"admin","password":"{}"}}"#, secret.trim()),
    );
    let alice = User {
        name: "alice".into(),
        ..User::default()
    };
    put_doc(&mut client, "users", "alice", &alice).await;
    let create = |token: &str, principal: &str| {
        let body = format!(r#"{{"principal":{principal}}}"#);
        call(port, "POST", "/v1/api-keys", Some(token), &body)
    };
    let alice_json = r#"{"kind":"user","name":"alice"}"#;

    // The admin makes alice's first key; the secret is answered once, only its hash stored.
    let (status, text) = create(&admin.token, alice_json);
    assert_eq!(status, 201, "{text}");
    let first: CreatedApiKey = serde_json::from_str(&text).unwrap();
    let stored = etcd.get(&keys::iam_object("users", "alice")).unwrap();
    assert!(
        !stored.contains(first.api_key.rsplit('.').next().unwrap()),
        "no secret in the store: {stored}"
    );
    let token1 = login(port, &format!(r#"{{"apiKey":"{}"}}"#, first.api_key));

    // alice rotates her own key without a permission, but may not make the admin's.
    let (status, text) = create(&token1.token, alice_json);
    assert_eq!(status, 201, "{text}");
    let second: CreatedApiKey = serde_json::from_str(&text).unwrap();
    let (status, text) = create(&token1.token, r#"{"kind":"user","name":"admin"}"#);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("lacks iam:api-key:create"), "{text}");

    let verifier = Verifier::default();
    tokio::spawn(verifier.clone().watch(
        vec![etcd.endpoint.clone()],
        Arc::new(MirrorStatus::default()),
    ));
    wait_until("the verifier", Duration::from_secs(10), || {
        verifier.verify(&token1.token).is_ok()
    });
    let path = format!("/v1/api-keys/{}", first.id);
    let (status, text) = call(port, "DELETE", &path, Some(&token1.token), "");
    assert_eq!(status, 200, "{text}");
    wait_until(
        "the deleted key's tokens refused",
        Duration::from_secs(1),
        || {
            matches!(
                verifier.verify(&token1.token),
                Err(TokenError::CredentialRevoked { .. })
            )
        },
    );
    let (status, _) = call(
        port,
        "POST",
        "/v1/login",
        None,
        &format!(r#"{{"apiKey":"{}"}}"#, first.api_key),
    );
    assert_eq!(status, 401, "the deleted key no longer logs in");
    let token2 = login(port, &format!(r#"{{"apiKey":"{}"}}"#, second.api_key));
    assert!(
        verifier.verify(&token2.token).is_ok(),
        "the new key works throughout"
    );
    assert_eq!(
        call(
            port,
            "DELETE",
            "/v1/api-keys/ak-none",
            Some(&admin.token),
            ""
        )
        .0,
        404
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}
