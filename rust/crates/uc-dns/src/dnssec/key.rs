//! A zone's signing key: one Combined Signing Key (flags 257, algorithm 13,
//! ECDSA P-256 with SHA-256) read from a PKCS#8 file the operator keeps
//! outside the Nix store. The DNSKEY and the DS (SHA-256) the parent needs
//! follow from it.

use std::path::{Path, PathBuf};

use hickory_proto::dnssec::crypto::EcdsaSigningKey;
use hickory_proto::dnssec::rdata::{DNSKEY, DS};
use hickory_proto::dnssec::{Algorithm, DigestType, SigningKey, TBS};
use hickory_proto::rr::Name;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The command the docs give for a key this module reads.
pub const KEYGEN_COMMAND: &str =
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out <file>";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is a SEC1 \"EC PRIVATE KEY\"; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in {path} -out <new file>`")]
    Sec1 { path: PathBuf },
    #[error("{path} holds no PKCS#8 private key (PEM \"PRIVATE KEY\" or DER); make one with `{KEYGEN_COMMAND}`")]
    NotPkcs8 { path: PathBuf },
    #[error("{path} is not an ECDSA P-256 key (DNSSEC algorithm 13): {reason}")]
    NotP256 { path: PathBuf, reason: String },
}

/// The key of one zone, ready to sign.
pub struct ZoneKey {
    pub path: PathBuf,
    signing: EcdsaSigningKey,
    pub dnskey: DNSKEY,
    pub key_tag: u16,
    /// The DS for the parent zone (digest type 2, SHA-256).
    pub ds: DS,
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneKey")
            .field("path", &self.path)
            .field("key_tag", &self.key_tag)
            .finish_non_exhaustive()
    }
}

impl ZoneKey {
    /// Reads the key of zone `apex` from `path` (PEM or DER PKCS#8).
    pub fn load(path: &Path, apex: &Name) -> Result<ZoneKey, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        ZoneKey::from_bytes(&bytes, path, apex)
    }

    pub fn from_bytes(bytes: &[u8], path: &Path, apex: &Name) -> Result<ZoneKey, KeyError> {
        let der = if bytes.starts_with(b"-----") {
            match PrivateKeyDer::from_pem_slice(bytes) {
                Ok(PrivateKeyDer::Pkcs8(der)) => der,
                Ok(PrivateKeyDer::Sec1(_)) => {
                    return Err(KeyError::Sec1 {
                        path: path.to_owned(),
                    })
                }
                _ => {
                    return Err(KeyError::NotPkcs8 {
                        path: path.to_owned(),
                    })
                }
            }
        } else {
            PrivatePkcs8KeyDer::from(bytes.to_vec())
        };
        let not_p256 = |reason: String| KeyError::NotP256 {
            path: path.to_owned(),
            reason,
        };
        let signing = EcdsaSigningKey::from_pkcs8(&der, Algorithm::ECDSAP256SHA256)
            .map_err(|err| not_p256(err.to_string()))?;
        let public = signing
            .to_public_key()
            .map_err(|err| not_p256(err.to_string()))?;
        // Zone key and secure entry point: 257, the one key signs everything.
        let dnskey = DNSKEY::new(true, true, false, public);
        let key_tag = dnskey
            .calculate_key_tag()
            .map_err(|err| not_p256(err.to_string()))?;
        let digest = dnskey
            .to_digest(apex, DigestType::SHA256)
            .map_err(|err| not_p256(err.to_string()))?;
        let ds = DS::new(
            key_tag,
            Algorithm::ECDSAP256SHA256,
            DigestType::SHA256,
            digest.as_ref().to_vec(),
        );
        Ok(ZoneKey {
            path: path.to_owned(),
            signing,
            dnskey,
            key_tag,
            ds,
        })
    }

    pub fn sign(&self, tbs: &TBS) -> Option<Vec<u8>> {
        self.signing.sign(tbs).ok()
    }

    /// The DS in presentation format, as the parent's operator enters it.
    pub fn ds_line(&self, apex: &Name) -> String {
        format!("{apex} IN DS {}", self.ds)
    }

    /// The DNSKEY in presentation format (some registrars take it instead).
    pub fn dnskey_line(&self, apex: &Name) -> String {
        format!("{apex} IN DNSKEY {}", self.dnskey)
    }
}

/// What `uc-dns dnssec-ds <zone> <key file>` prints: the DS and DNSKEY of
/// the key at `path` as zone `zone`'s, without serving anything (a new key
/// is given to the parent before it signs, see docs/dns.md).
pub fn describe(zone: &str, path: &Path) -> Result<String, KeyError> {
    let apex = Name::from_ascii(format!("{}.", zone.trim_end_matches('.'))).map_err(|err| {
        KeyError::NotP256 {
            path: path.to_owned(),
            reason: format!("{zone:?} is not a zone name: {err}"),
        }
    })?;
    let key = ZoneKey::load(path, &apex)?;
    Ok(format!(
        "{}\n{}\n; key tag {}\n",
        key.ds_line(&apex),
        key.dnskey_line(&apex),
        key.key_tag
    ))
}
