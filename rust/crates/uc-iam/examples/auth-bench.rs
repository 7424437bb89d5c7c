//! Side by side, in one process on one core: verifying a uc-iam token with
//! `uc_auth::KeySet::verify` (base64url, header and claims JSON, times,
//! revocations) against the bare Ed25519 signature check of the same bytes,
//! printed as a ratio; and the cost of one argon2id password check with
//! uc-iam's parameters. Run by bench/auth-verify (docs/iam-performance.md).

use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, SigningKey};
use uc_auth::token::{self, Claims, ISSUER};
use uc_auth::KeySet;
use uc_iam::credentials::{hash_password, password_matches};

/// Runs `f` for about `for_at_least`; operations per second.
fn rate(for_at_least: Duration, mut f: impl FnMut() -> bool) -> f64 {
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < for_at_least {
        for _ in 0..64 {
            assert!(f(), "the operation must succeed");
        }
        done += 64;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let run = Duration::from_secs(seconds);
    let key = SigningKey::from_bytes(&[7; 32]);
    let now = uc_types::unix_seconds();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: "user:alice".into(),
        tenants: vec!["acme".into(), "globex".into()],
        iat: now,
        nbf: now,
        exp: now + 900,
        jti: "0123456789abcdef0123456789abcdef".into(),
        cred: "password-alice".into(),
    };
    let jwt = token::issue(&key, "1800000000-0a1b2c3d", &claims);
    let mut keys = KeySet::default();
    keys.insert_key("1800000000-0a1b2c3d", key.verifying_key());
    // A verifier also holds revocations: a thousand of them here.
    for i in 0..1000 {
        keys.revoke_token(&format!("revoked-{i}"), now + 900);
    }
    let (input, signature) = jwt.rsplit_once('.').expect("three parts");
    let signature = {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .expect("base64url");
        Signature::from_slice(&bytes).expect("64 bytes")
    };
    let public = key.verifying_key();

    let bare = rate(run, || {
        public.verify_strict(input.as_bytes(), &signature).is_ok()
    });
    let full = rate(run, || keys.verify(&jwt, now).is_ok());
    println!("token: {} bytes", jwt.len());
    println!("ed25519 verify_strict alone     {bare:>10.0} /s");
    println!("uc_auth KeySet::verify (JWT)    {full:>10.0} /s");
    println!("ratio (JWT / bare signature)    {:>10.3}", full / bare);

    let phc = hash_password("correct horse battery staple").expect("argon2");
    let logins = rate(run, || {
        password_matches("correct horse battery staple", &phc)
    });
    println!(
        "argon2id m=19456 t=2 p=1 check  {logins:>10.1} /s ({:.1} ms each)",
        1000.0 / logins
    );
}
