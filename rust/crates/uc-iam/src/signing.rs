//! The token-signing key: its private half in a file on this node (mode
//! 0600, in the daemon's state directory, never in the Nix store), its
//! public half published at `/uc/v1/iam/signing-keys/<kid>`. Each uc-iam
//! node signs with a key of its own, so no private key ever travels.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use uc_auth::token;
use uc_types::iam::SigningKeyRecord;

use crate::credentials::{random_bytes, CredentialError};

/// The key file's content.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeyFile {
    kid: String,
    /// The 32-byte Ed25519 seed, base64url.
    secret: String,
    created_at: u64,
}

/// A key uc-iam signs tokens with.
pub struct Signer {
    pub kid: String,
    pub key: SigningKey,
    pub created_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the signing key {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the signing key {} is not uc-iam's key file (JSON with kid, secret, createdAt): {why}; move it away to have a new key generated", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("cannot write the signing key {}: {source} (set --signing-key-file to a writable path)", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Random(#[from] CredentialError),
}

impl Signer {
    /// A new random key named `<created unix seconds>-<8 hex digits>`.
    pub fn generate(now: u64) -> Result<Signer, CredentialError> {
        let suffix: String = random_bytes::<4>()?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Signer {
            kid: format!("{now}-{suffix}"),
            key: SigningKey::from_bytes(&random_bytes::<32>()?),
            created_at: now,
        })
    }

    /// The key in `path`, or a new one written there (0600) if it is absent.
    pub fn load_or_generate(path: &Path, now: u64) -> Result<(Signer, bool), KeyFileError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok((Signer::parse(path, &bytes)?, false)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let signer = Signer::generate(now)?;
                signer.write(path)?;
                Ok((signer, true))
            }
            Err(source) => Err(KeyFileError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Signer, KeyFileError> {
        let invalid = |why: String| KeyFileError::Invalid {
            path: path.to_owned(),
            why,
        };
        let file: KeyFile = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&file.secret)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| invalid("secret is not 32 base64url bytes".into()))?;
        Ok(Signer {
            kid: file.kid,
            key: SigningKey::from_bytes(&seed),
            created_at: file.created_at,
        })
    }

    /// Writes the key to `path` atomically (a 0600 temporary file renamed
    /// over it), so a crash leaves the old key or the new one.
    pub fn write(&self, path: &Path) -> Result<(), KeyFileError> {
        let error = |source| KeyFileError::Write {
            path: path.to_owned(),
            source,
        };
        let file = KeyFile {
            kid: self.kid.clone(),
            secret: URL_SAFE_NO_PAD.encode(self.key.to_bytes()),
            created_at: self.created_at,
        };
        let text = serde_json::to_vec(&file).unwrap_or_default();
        let temporary = path.with_extension("new");
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(error)?;
        out.write_all(&text)
            .and_then(|()| out.sync_all())
            .map_err(error)?;
        std::fs::rename(&temporary, path).map_err(error)
    }

    /// What is published for verifiers.
    pub fn record(&self, retired_at: Option<u64>) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: self.kid.clone(),
            public_key: token::encode_public_key(&self.key.verifying_key()),
            created_at: self.created_at,
            retired_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_generated_key_is_written_0600_and_read_back() {
        let dir = uc_testkit::TestDir::new("uc-iam-keyfile");
        let path = dir.join("signing.key");
        let (first, generated) = Signer::load_or_generate(&path, 100).unwrap();
        assert!(generated);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, generated) = Signer::load_or_generate(&path, 200).unwrap();
        assert!(!generated);
        assert_eq!(
            (again.kid, again.key.to_bytes()),
            (first.kid.clone(), first.key.to_bytes())
        );
        std::fs::write(&path, "{}").unwrap();
        let err = Signer::load_or_generate(&path, 300)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("is not uc-iam's key file"), "{err}");
    }
}
