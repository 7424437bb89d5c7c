//! TLS termination for `https` listeners: the certificate chain and key
//! from the listener's files (never from the Nix store: secrets are read
//! at run time), reloaded when either file changes. A new connection uses
//! the config current when it arrives; open ones keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::spec::TlsFiles;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: secrets are never read from the Nix store; give a path on the node")]
    InNixStore { path: PathBuf },
    #[error("cannot read the certificate chain {path}: {source}")]
    Certificate {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot read the private key {path}: {source}")]
    Key {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("certificate {certificate} and key {key} do not make a TLS config: {source}")]
    Config {
        certificate: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// What identifies a file's version: modification time and length.
pub(crate) type Stamp = Option<(SystemTime, u64)>;

pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    stamps: Mutex<(Stamp, Stamp)>,
}

impl Tls {
    pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
        let stamps = (stamp(&files.certificate), stamp(&files.key));
        let config = server_config(files)?;
        Ok(Tls {
            files: files.clone(),
            current: RwLock::new(Arc::new(config)),
            stamps: Mutex::new(stamps),
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        TlsAcceptor::from(config)
    }

    /// Reloads the files if they changed since last read: `Ok(true)` when a
    /// new config is in use; on error the previous one stays.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = (stamp(&self.files.certificate), stamp(&self.files.key));
        let mut stamps = match self.stamps.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if *stamps == now {
            return Ok(false);
        }
        // Seen either way: a broken pair is reported once, not every second.
        *stamps = now;
        let config = Arc::new(server_config(&self.files)?);
        match self.current.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(true)
    }
}

pub(crate) fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    for path in [&files.certificate, &files.key] {
        if path.starts_with("/nix/store") {
            return Err(TlsError::InNixStore { path: path.clone() });
        }
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.certificate)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|source| TlsError::Certificate {
            path: files.certificate.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.certificate.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Key {
        path: files.key.clone(),
        source,
    })?;
    let config_error = |source| TlsError::Config {
        certificate: files.certificate.clone(),
        key: files.key.clone(),
        source,
    };
    // ring, not aws-lc (which needs cmake and a C toolchain to build);
    // rustls 0.23.48 deprecates it for lacking post-quantum key exchange.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(config_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
