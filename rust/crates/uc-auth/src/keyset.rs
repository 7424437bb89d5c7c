//! What a verifier holds: the published public keys and the revoked token
//! and credential ids, built from `/uc/v1/iam/signing-keys/` and
//! `/uc/v1/iam/revoked/` (`KeySet::apply`, fed by [`crate::watch`]).

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use uc_types::iam::{Revocation, SigningKeyRecord};
use uc_types::keys::{self, Key};

use crate::token::{self, TokenError, Verified};

#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: BTreeMap<String, VerifyingKey>,
    /// jti → until (unix seconds)
    revoked_tokens: BTreeMap<String, u64>,
    /// credential id → until
    revoked_credentials: BTreeMap<String, u64>,
}

/// A store value under the watched prefixes that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {why}")]
pub struct BadRecord {
    pub key: String,
    pub why: String,
}

impl KeySet {
    pub fn insert_key(&mut self, kid: &str, key: VerifyingKey) {
        self.keys.insert(kid.to_owned(), key);
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn revoke_token(&mut self, jti: &str, until: u64) {
        self.revoked_tokens.insert(jti.to_owned(), until);
    }

    pub fn revoke_credential(&mut self, id: &str, until: u64) {
        self.revoked_credentials.insert(id.to_owned(), until);
    }

    /// Verifies `token` at `now`: signature by a published key, times, and
    /// neither the token nor its credential revoked.
    pub fn verify(&self, token: &str, now: u64) -> Result<Verified, TokenError> {
        let verified = token::verify(token, |kid| self.keys.get(kid).copied(), now)?;
        let claims = &verified.claims;
        if self
            .revoked_tokens
            .get(&claims.jti)
            .is_some_and(|until| now < *until)
        {
            return Err(TokenError::Revoked {
                jti: claims.jti.clone(),
            });
        }
        if self
            .revoked_credentials
            .get(&claims.cred)
            .is_some_and(|until| now < *until)
        {
            return Err(TokenError::CredentialRevoked {
                cred: claims.cred.clone(),
            });
        }
        Ok(verified)
    }

    /// Applies a put (`Some`) or delete (`None`) of a store key; whether it
    /// changed anything. Keys outside the watched prefixes are ignored; a
    /// value that does not parse is an error and leaves the set unchanged.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) -> Result<bool, BadRecord> {
        let bad = |why: String| BadRecord {
            key: key.to_owned(),
            why,
        };
        match (keys::parse(key), value) {
            (Some(Key::IamSigningKey { kid }), Some(value)) => {
                let record: SigningKeyRecord =
                    serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?;
                let public = token::decode_public_key(&record.public_key)
                    .ok_or_else(|| bad("publicKey is not a base64url Ed25519 public key".into()))?;
                if record.kid != kid {
                    return Err(bad(format!("kid is {:?}, not the key's name", record.kid)));
                }
                self.insert_key(kid, public);
                Ok(true)
            }
            (Some(Key::IamSigningKey { kid }), None) => Ok(self.keys.remove(kid).is_some()),
            (Some(Key::IamRevokedToken { jti }), value) => {
                apply_revocation(&mut self.revoked_tokens, jti, value).map_err(bad)
            }
            (Some(Key::IamRevokedCredential { id }), value) => {
                apply_revocation(&mut self.revoked_credentials, id, value).map_err(bad)
            }
            _ => Ok(false),
        }
    }
}

/// A revocation put (`Some`) or deleted (`None`) at `id` of `revoked`.
fn apply_revocation(
    revoked: &mut BTreeMap<String, u64>,
    id: &str,
    value: Option<&[u8]>,
) -> Result<bool, String> {
    match value {
        Some(value) => {
            let revocation: Revocation =
                serde_json::from_slice(value).map_err(|e| e.to_string())?;
            revoked.insert(id.to_owned(), revocation.until);
            Ok(true)
        }
        None => Ok(revoked.remove(id).is_some()),
    }
}
