//! Secrets in and out: argon2id password hashes, API keys and their
//! SHA-256, random secrets.
//!
//! Argon2id with m = 19 MiB, t = 2, p = 1: OWASP's recommended minimum
//! (Password Storage Cheat Sheet): 17-22 ms of one core per login
//! (bench/auth-verify, docs/iam-performance.md), so a stolen hash is slow
//! to guess. API keys are 32 random bytes: no
//! guessing to slow down, so their hash is SHA-256 and login is cheap.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use uc_types::iam::{is_name, Principal};

/// m (KiB), t, p.
pub const ARGON2_PARAMS: (u32, u32, u32) = (19 * 1024, 2, 1);

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("the system's random source failed: {0}")]
    Random(String),
    #[error("argon2: {0}")]
    Argon2(String),
}

fn argon2() -> Result<Argon2<'static>, CredentialError> {
    let (m, t, p) = ARGON2_PARAMS;
    let params = Params::new(m, t, p, None).map_err(|e| CredentialError::Argon2(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// `n` random bytes from the OS.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CredentialError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| CredentialError::Random(e.to_string()))?;
    Ok(bytes)
}

/// A new random secret, 32 bytes as base64url (43 characters).
pub fn random_secret() -> Result<String, CredentialError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// The argon2id PHC string of `password`.
pub fn hash_password(password: &str) -> Result<String, CredentialError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| CredentialError::Argon2(e.to_string()))?;
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| CredentialError::Argon2(e.to_string()))
}

/// Whether `password` matches the stored PHC string (false for a
/// malformed one).
pub fn password_matches(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    argon2().is_ok_and(|a| a.verify_password(password.as_bytes(), &hash).is_ok())
}

/// `sha256:<hex>` of an API key's secret part.
pub fn secret_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// An API key as a client holds it: `<user|sa>.<name>.<key id>.<secret>`.
#[derive(Debug, PartialEq, Eq)]
pub struct ApiKeyText {
    pub principal: Principal,
    pub id: String,
    pub secret: String,
}

impl ApiKeyText {
    pub fn parse(text: &str) -> Option<ApiKeyText> {
        let mut parts = text.split('.');
        let (Some(kind), Some(name), Some(id), Some(secret), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let principal = Principal::from_subject(&format!("{kind}:{name}"))?;
        (is_name(id) && !secret.is_empty()).then(|| ApiKeyText {
            principal,
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    pub fn format(&self) -> String {
        let subject = self.principal.subject().replacen(':', ".", 1);
        format!("{subject}.{}.{}", self.id, self.secret)
    }
}

/// The credential id a password login's tokens carry (`cred`).
pub fn password_credential(user: &str) -> String {
    format!("password-{user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_the_documented_parameters_and_verify() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(password_matches("correct horse", &phc));
        assert!(!password_matches("wrong", &phc));
        assert!(!password_matches("correct horse", "not a hash"));
        assert_ne!(phc, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn api_keys_parse_back_and_hash() {
        let key = ApiKeyText {
            principal: Principal::ServiceAccount("ci".into()),
            id: "ak1".into(),
            secret: random_secret().unwrap(),
        };
        assert_eq!(ApiKeyText::parse(&key.format()), Some(key));
        for bad in [
            "",
            "sa.ci.ak1",
            "group.ops.ak1.s",
            "sa.ci.AK.s",
            "sa.ci.ak1.",
            "sa.ci.ak1.s.x",
        ] {
            assert_eq!(ApiKeyText::parse(bad), None, "{bad}");
        }
        assert!(uc_types::iam::is_sha256(&secret_hash("x")));
    }
}
