//! TLS towards an L7 listener's backends (`backendTls`): HTTP/1.1 over
//! TLS (ALPN http/1.1), each backend verified against the listener's CA
//! bundle only (not the system's roots: a backend is the operator's own),
//! by `serverName` or else by its address (an IP SAN). The bundle is read
//! when the listener's settings are made and again when the file changes;
//! a bundle that cannot be used fails each new backend connection with a
//! message saying why (the previous good one stays in use).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::spec::BackendTlsSpec;
use crate::tls::{stamp, Stamp};

/// A failed TLS connection to a backend (a connect failure: the request
/// may go to another backend); its text ends up in uc-lb's 502.
#[derive(Debug, Clone, thiserror::Error)]
#[error("TLS to backend {backend} failed: {reason}")]
pub struct BackendTlsError {
    pub backend: SocketAddr,
    pub reason: String,
}

pub struct BackendTls {
    spec: BackendTlsSpec,
    /// The client config from the bundle, or why there is none yet.
    current: RwLock<Result<Arc<ClientConfig>, String>>,
    stamp: Mutex<Stamp>,
}

impl BackendTls {
    pub fn load(spec: &BackendTlsSpec) -> BackendTls {
        let stamp = stamp(&spec.ca_file);
        let current = client_config(spec);
        if let Err(err) = &current {
            tracing::error!(%err, "backend TLS: the CA bundle cannot be used");
        }
        BackendTls {
            spec: spec.clone(),
            current: RwLock::new(current),
            stamp: Mutex::new(stamp),
        }
    }

    /// The config to use now, re-read first when the bundle changed.
    fn config(&self) -> Result<Arc<ClientConfig>, String> {
        let now = stamp(&self.spec.ca_file);
        let mut seen = match self.stamp.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut current = match self.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if *seen != now {
            *seen = now;
            match client_config(&self.spec) {
                Ok(config) => {
                    tracing::info!(ca = %self.spec.ca_file.display(), "backend TLS: CA bundle reloaded");
                    *current = Ok(config);
                }
                Err(err) => {
                    tracing::error!(%err, "backend TLS: the CA bundle changed but cannot be used; keeping the previous one");
                    if current.is_err() {
                        *current = Err(err);
                    }
                }
            }
        }
        current.clone()
    }

    /// A TLS session over `tcp` to `backend`, verified.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        backend: SocketAddr,
    ) -> Result<TlsStream<TcpStream>, BackendTlsError> {
        let failed = |reason: String| BackendTlsError { backend, reason };
        let config = self.config().map_err(failed)?;
        let name = match &self.spec.server_name {
            Some(name) => ServerName::try_from(name.clone())
                .map_err(|err| failed(format!("serverName {name:?}: {err}")))?,
            None => ServerName::IpAddress(backend.ip().into()),
        };
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|err| failed(err.to_string()))
    }
}

fn client_config(spec: &BackendTlsSpec) -> Result<Arc<ClientConfig>, String> {
    let path = &spec.ca_file;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|err| format!("cannot read the CA bundle {}: {err}", path.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{} holds no usable CA certificate", path.display()));
    }
    // ring, as for the listener's own TLS (see tls.rs).
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The backend connector of an L7 listener's keep-alive pool: TCP, then
/// TLS when the listener has `backendTls`, the handshake bounded by the
/// connect timeout.
#[derive(Clone)]
pub struct Connector {
    pub http: HttpConnector,
    pub tls: Option<Arc<BackendTls>>,
    pub timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<BackendStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        let (tls, timeout) = (self.tls.clone(), self.timeout);
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            let Some(tls) = tls else {
                return Ok(TokioIo::new(BackendStream::Plain(tcp)));
            };
            let backend = tcp.peer_addr()?;
            let stream = tokio::time::timeout(timeout, tls.connect(tcp, backend))
                .await
                .map_err(|_| BackendTlsError {
                    backend,
                    reason: format!("no handshake within {timeout:?}"),
                })??;
            Ok(TokioIo::new(BackendStream::Tls(Box::new(stream))))
        })
    }
}

/// The TLS failure behind a failed request to a backend, if that was it.
pub fn tls_failure<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BackendTlsError> {
    let mut cause = err.source();
    while let Some(err) = cause {
        if let Some(tls) = err.downcast_ref::<BackendTlsError>() {
            return Some(tls);
        }
        cause = err.source();
    }
    None
}

pub enum BackendStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for BackendStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for BackendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            BackendStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            BackendStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_flush(cx),
            BackendStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            BackendStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
