//! uc-iam as a daemon: loads (or generates) this node's signing key and
//! publishes its public half, creates the bootstrap admin if the store has
//! none, keeps a verifier on the published keys and revocations, and serves
//! the API (`http`) until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client;
use uc_auth::watch::Current;
use uc_auth::Verifier;
use uc_store_mirror::MirrorStatus;
use uc_types::unix_seconds;

use crate::audit::AuditLog;
use crate::bootstrap;
use crate::metrics::Metrics;
use crate::signing::{KeyFileError, Signer};
use crate::store::{self, StoreError};

/// How uc-iam runs: from its flags (docs/iam.md).
#[derive(Clone, Debug)]
pub struct Options {
    pub node: String,
    pub http_listen: SocketAddr,
    pub store_endpoints: Vec<String>,
    /// The private signing key (0600; generated if absent).
    pub signing_key_file: PathBuf,
    /// The bootstrap admin's password (0600; generated and logged once if absent).
    pub bootstrap_secret_file: PathBuf,
    /// Lifetime of the tokens issued.
    pub token_ttl: Duration,
    /// How long audit records are kept.
    pub audit_retention: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot reach the store at {endpoints:?}: {source}")]
    Connect {
        endpoints: Vec<String>,
        source: etcd_client::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::BootstrapError),
    #[error(transparent)]
    Bind(#[from] uc_daemon::BindError),
}

/// What the request handlers share.
pub struct State {
    pub options: Options,
    pub client: Client,
    pub signer: Current<Signer>,
    pub verifier: Verifier,
    pub mirror: Arc<MirrorStatus>,
    pub metrics: Arc<Metrics>,
    pub registry: uc_daemon::metrics::Registry,
    pub audit: AuditLog,
}

impl State {
    pub fn signer(&self) -> Arc<Signer> {
        self.signer.load()
    }

    pub fn set_signer(&self, signer: Signer) {
        self.signer.store(signer);
    }

    /// How long a retired key stays published: until every token it signed
    /// expired, with the verifiers' clock-skew leeway.
    pub fn retired_key_lifetime(&self) -> u64 {
        self.options.token_ttl.as_secs() + uc_auth::token::NOT_BEFORE_LEEWAY + 5
    }
}

pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let span = tracing::info_span!("uc_iam", node = %options.node);
    let _entered = span.enter();
    let mut client = tokio::time::timeout(
        Duration::from_secs(10),
        Client::connect(&options.store_endpoints, None),
    )
    .await
    .unwrap_or_else(|_| {
        Err(etcd_client::Error::InvalidArgs(
            "timed out after 10 s".into(),
        ))
    })
    .map_err(|source| DaemonError::Connect {
        endpoints: options.store_endpoints.clone(),
        source,
    })?;

    let (signer, generated) = Signer::load_or_generate(&options.signing_key_file, unix_seconds())?;
    if generated {
        tracing::info!(kid = %signer.kid, path = %options.signing_key_file.display(), "signing key generated");
    }
    store::publish_key(&mut client, &signer.record(None), None).await?;
    bootstrap::ensure_admin(&mut client, &options.bootstrap_secret_file).await?;

    let metrics = Arc::new(Metrics::default());
    let verifier = Verifier::default();
    let mirror = Arc::new(MirrorStatus::default());
    let watch = tokio::spawn(
        verifier
            .clone()
            .watch(options.store_endpoints.clone(), mirror.clone()),
    );
    let listener = uc_daemon::bind_http(options.http_listen).await?;
    let state = Arc::new(State {
        registry: metrics.registry(),
        audit: AuditLog::new(
            client.clone(),
            options.audit_retention.as_secs(),
            metrics.clone(),
        ),
        options,
        client,
        signer: Current::new(signer),
        verifier,
        mirror,
        metrics,
    });
    let server = uc_daemon::http::spawn_serve(listener, crate::http::router(state));
    tracing::info!("serving");
    shutdown.await;
    tracing::info!("shutting down");
    server.abort();
    watch.abort();
    Ok(())
}
