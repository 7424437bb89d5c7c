//! Narinfo signatures in Nix's format: ed25519 over the path's fingerprint,
//! with keys written as `name:base64` (as `nix-store --generate-binary-cache-key`
//! makes them).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::Signer;

use super::PathInfo;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the cache signing key {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the cache signing key {} is inside the Nix store, which is world-readable; keep it outside (e.g. /var/lib/ultracloud/deployer/cache-signing.key)", path.display())]
    InStore { path: PathBuf },
    #[error("the cache signing key {what} is not `name:base64` as written by `nix-store --generate-binary-cache-key`: {why}")]
    Format { what: String, why: String },
}

pub struct SigningKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// Parses a Nix secret key: `name:` and the base64 of the 64-byte
    /// ed25519 keypair (seed, then public key).
    pub fn parse(what: &str, text: &str) -> Result<Self, KeyError> {
        let format = |why: &str| KeyError::Format {
            what: what.to_owned(),
            why: why.to_owned(),
        };
        let (name, encoded) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| format("no ':' after the key name"))?;
        if name.is_empty() {
            return Err(format("the key name is empty"));
        }
        let bytes = BASE64
            .decode(encoded)
            .map_err(|e| format(&format!("bad base64: {e}")))?;
        let pair: [u8; 64] = bytes.as_slice().try_into().map_err(|_| {
            format(&format!(
                "{} bytes where a secret key has 64 (is this the public key?)",
                bytes.len()
            ))
        })?;
        let key = ed25519_dalek::SigningKey::from_keypair_bytes(&pair)
            .map_err(|_| format("its public half does not match its secret half"))?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        if path.starts_with("/nix/store") {
            return Err(KeyError::InStore {
                path: path.to_owned(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The public key as nix.conf's `trusted-public-keys` wants it.
    pub fn public_key(&self) -> String {
        format!(
            "{}:{}",
            self.name,
            BASE64.encode(self.key.verifying_key().to_bytes())
        )
    }

    /// `name:base64(signature)`, the narinfo `Sig:` value.
    pub fn sign(&self, fingerprint: &str) -> String {
        let signature = self.key.sign(fingerprint.as_bytes());
        format!("{}:{}", self.name, BASE64.encode(signature.to_bytes()))
    }
}

/// What Nix signs for a store path: `1;<path>;<narHash>;<narSize>;<refs>`,
/// references as full paths separated by commas.
pub fn fingerprint(info: &PathInfo) -> String {
    format!(
        "1;{};{};{};{}",
        info.path,
        info.nar_hash,
        info.nar_size,
        info.references.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-1:dIbf+X4xryAERjId/qOdY5+3cl+5i1gbmnd0FPQgVmNAPu2irZV60PJEx74uWgcg8BBj1ewQOeI9NnZjtOyI8A==";

    #[test]
    fn refuses_malformed_keys_with_reasons() {
        let err = |t| {
            SigningKey::parse("k", t)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err("nocolon").contains("no ':'"));
        assert!(err(":AAAA").contains("name is empty"));
        assert!(err("n:!!!").contains("bad base64"));
        assert!(err("n:QD7toq2VetDyRMe+LloHIPAQY9XsEDniPTZ2Y7TsiPA=")
            .contains("is this the public key?"));
    }

    #[test]
    fn derives_the_public_key() {
        let key = SigningKey::parse("k", SECRET).expect("valid key");
        assert_eq!(
            key.public_key(),
            "test-1:QD7toq2VetDyRMe+LloHIPAQY9XsEDniPTZ2Y7TsiPA="
        );
    }

    #[test]
    fn keys_in_the_store_are_refused() {
        let err = SigningKey::load(Path::new("/nix/store/abc-key"))
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("world-readable"));
    }
}
