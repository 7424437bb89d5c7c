//! A Verifier watching a real store: published keys verify, a revocation
//! written to the store refuses the token within a second, a retired key's
//! deletion refuses its tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use uc_auth::token::{self, Claims, ISSUER};
use uc_auth::{TokenError, Verifier};
use uc_store_mirror::MirrorStatus;
use uc_testkit::{Etcd, TestDir};
use uc_types::iam::{Revocation, SigningKeyRecord};
use uc_types::{keys, unix_seconds};

fn claims(jti: &str) -> Claims {
    let now = unix_seconds();
    Claims {
        iss: ISSUER.into(),
        sub: "user:alice".into(),
        tenants: vec![],
        iat: now,
        nbf: now,
        exp: now + 600,
        jti: jti.into(),
        cred: "ak1".into(),
    }
}

async fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_key_removals_reach_a_watching_verifier_within_a_second() {
    let dir = TestDir::new("uc-auth-watch");
    let etcd = Etcd::start(&dir.join("etcd"));
    let mut client = etcd.client().await;
    let key = SigningKey::from_bytes(&[9; 32]);
    let record = SigningKeyRecord {
        kid: "k1".into(),
        public_key: token::encode_public_key(&key.verifying_key()),
        created_at: unix_seconds(),
        retired_at: None,
    };
    client
        .put(
            keys::iam_signing_key("k1"),
            serde_json::to_vec(&record).unwrap(),
            None,
        )
        .await
        .unwrap();

    let verifier = Verifier::default();
    tokio::spawn(verifier.clone().watch(
        vec![etcd.endpoint.clone()],
        Arc::new(MirrorStatus::default()),
    ));
    let t1 = token::issue(&key, "k1", &claims("t1"));
    let t2 = token::issue(&key, "k1", &claims("t2"));
    wait_until("the published key", Duration::from_secs(10), || {
        verifier.verify(&t1).is_ok()
    })
    .await;

    let revocation = Revocation {
        revoked_at: unix_seconds(),
        until: unix_seconds() + 600,
        reason: "test".into(),
    };
    client
        .put(
            keys::iam_revoked_token("t1"),
            serde_json::to_vec(&revocation).unwrap(),
            None,
        )
        .await
        .unwrap();
    let took = wait_until("the revocation of t1", Duration::from_secs(1), || {
        verifier.verify(&t1) == Err(TokenError::Revoked { jti: "t1".into() })
    })
    .await;
    eprintln!("revocation seen after {took:?}");
    assert!(verifier.verify(&t2).is_ok(), "only t1 is revoked");

    client
        .delete(keys::iam_signing_key("k1"), None)
        .await
        .unwrap();
    wait_until("k1's removal", Duration::from_secs(1), || {
        verifier.verify(&t2) == Err(TokenError::UnknownKey { kid: "k1".into() })
    })
    .await;
}
