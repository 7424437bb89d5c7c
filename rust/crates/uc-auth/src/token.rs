//! uc-iam's tokens: JWTs (RFC 7519) signed with Ed25519 (`alg: EdDSA`, RFC
//! 8037), the signing key named by `kid` in the header.
//!
//! JWT rather than PASETO v4.public (the same Ed25519 underneath): any
//! language's JWT library verifies it from the published keys, and the
//! usual JWT pitfalls are closed here by refusing every header but
//! `{"alg":"EdDSA","kid":…,"typ":"JWT"}` — the algorithm is never chosen
//! by the token — and every unknown claim.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Longer input is refused before it is decoded.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// How far a token's `nbf` may lie in a verifier's future (clock skew
/// between nodes). Expiry has no leeway.
pub const NOT_BEFORE_LEEWAY: u64 = 5;
pub const ISSUER: &str = "uc-iam";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    kid: String,
    typ: String,
}

/// What a token says. Times are unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub iss: String,
    /// The principal, `user:<name>` or `sa:<name>` (`Principal::subject`).
    pub sub: String,
    /// The tenants the principal had a binding in when the token was issued.
    pub tenants: Vec<String>,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// The token id, what a revocation names.
    pub jti: String,
    /// The credential the token was issued for (an API key id or
    /// `password-<user>`): revoking it refuses the token too.
    pub cred: String,
}

/// A token that verified: its claims and the key that signed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub kid: String,
    pub claims: Claims,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the token's header is not {{\"alg\":\"EdDSA\",\"kid\":…,\"typ\":\"JWT\"}}")]
    UnsupportedHeader,
    #[error("the token was signed with key {kid:?}, which is not published (unknown or retired)")]
    UnknownKey { kid: String },
    #[error("the token's signature does not verify with key {kid:?}")]
    BadSignature { kid: String },
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("the token is not valid before {nbf} (now {now})")]
    NotYetValid { nbf: u64, now: u64 },
    #[error("the token {jti:?} is revoked")]
    Revoked { jti: String },
    #[error("the credential {cred:?} the token was issued for is revoked")]
    CredentialRevoked { cred: String },
}

impl TokenError {
    /// A short label for metrics (`token_verifications_total{result}`).
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "malformed",
            TokenError::UnsupportedHeader => "unsupported_header",
            TokenError::UnknownKey { .. } => "unknown_key",
            TokenError::BadSignature { .. } => "bad_signature",
            TokenError::Expired { .. } => "expired",
            TokenError::NotYetValid { .. } => "not_yet_valid",
            TokenError::Revoked { .. } => "revoked",
            TokenError::CredentialRevoked { .. } => "credential_revoked",
        }
    }
}

/// Signs `claims` with `key`, named `kid`.
pub fn issue(key: &SigningKey, kid: &str, claims: &Claims) -> String {
    let header = Header {
        alg: "EdDSA".into(),
        kid: kid.into(),
        typ: "JWT".into(),
    };
    let signing_input = format!("{}.{}", encode_json(&header), encode_json(claims));
    let signature = key.sign(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    )
}

fn encode_json<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// Verifies `token`'s signature with the key `keys` gives for its `kid`,
/// then its times against `now`. Revocations are the caller's (`KeySet`).
pub fn verify(
    token: &str,
    keys: impl Fn(&str) -> Option<VerifyingKey>,
    now: u64,
) -> Result<Verified, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("longer than 8 KiB"));
    }
    let malformed = TokenError::Malformed("not three dot-separated parts");
    let (signing_input, signature) = token.rsplit_once('.').ok_or(malformed.clone())?;
    let (header, payload) = signing_input.split_once('.').ok_or(malformed.clone())?;
    if payload.contains('.') {
        return Err(malformed);
    }
    let header: Header =
        decode_json(header).ok_or(TokenError::Malformed("the header is not base64url JSON"))?;
    if header.alg != "EdDSA" || header.typ != "JWT" {
        return Err(TokenError::UnsupportedHeader);
    }
    let key = keys(&header.kid).ok_or_else(|| TokenError::UnknownKey {
        kid: header.kid.clone(),
    })?;
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(TokenError::Malformed(
            "the signature is not 64 base64url bytes",
        ))?;
    key.verify_strict(
        signing_input.as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&signature),
    )
    .map_err(|_| TokenError::BadSignature {
        kid: header.kid.clone(),
    })?;
    let claims: Claims = decode_json(payload).ok_or(TokenError::Malformed(
        "the claims are not base64url JSON of uc-iam's claims",
    ))?;
    if claims.iss != ISSUER {
        return Err(TokenError::Malformed("the issuer is not uc-iam"));
    }
    if now >= claims.exp {
        return Err(TokenError::Expired {
            exp: claims.exp,
            now,
        });
    }
    if claims.nbf > now.saturating_add(NOT_BEFORE_LEEWAY) {
        return Err(TokenError::NotYetValid {
            nbf: claims.nbf,
            now,
        });
    }
    Ok(Verified {
        kid: header.kid,
        claims,
    })
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The published form of a public key (RFC 8037 `x`: base64url, no padding).
pub fn encode_public_key(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.to_bytes())
}

pub fn decode_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// One published key as a JSON Web Key (RFC 8037: `kty` OKP, `crv`
/// Ed25519), so any JWT library can verify uc-iam's tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub kid: String,
    pub x: String,
}

/// `GET /v1/keys`: every published key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwk {
    pub fn ed25519(kid: &str, x: &str) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
            kid: kid.into(),
            x: x.into(),
        }
    }
}

#[cfg(test)]
mod tests;
