//! uc-dns as a daemon: binds DNS and HTTP, keeps the snapshot in step with
//! the store in the background, and answers until SIGTERM.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::http::{self, Shared};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::report::Reporter;
use crate::server::{self, BindError, Handler};
use crate::snapshot::Published;
use crate::status::SyncStatus;
use crate::sync::Syncer;

/// How this uc-dns runs: from the config file or from flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub store_endpoints: Vec<String>,
    /// DNS addresses, UDP and TCP.
    pub listen: Vec<SocketAddr>,
    pub http_listen: SocketAddr,
    /// Zones to serve; `None`: every zone under /uc/v1/dns/zones/.
    pub zones: Option<BTreeSet<String>>,
    /// UDP sockets per address (one per worker thread).
    pub udp_sockets: usize,
    /// This node's name, for its status key (`report`); `None`: no status
    /// is written.
    pub node: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("HTTP endpoint: {0}")]
    Http(#[source] uc_daemon::BindError),
    #[error("DNS server stopped: {0}")]
    Server(#[from] hickory_server::net::NetError),
}

pub async fn run(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let published = Arc::new(Published::default());
    let published_changed = Arc::new(tokio::sync::Notify::new());
    let metrics = Arc::new(Metrics::new());
    let status = Arc::new(SyncStatus::default());
    let handler = Handler {
        published: published.clone(),
        metrics: metrics.clone(),
    };
    let (mut server, bound) = server::serve(handler, &settings.listen, settings.udp_sockets)?;
    let listener = uc_daemon::bind_http(settings.http_listen)
        .await
        .map_err(DaemonError::Http)?;
    let app = http::router(Shared {
        published: published.clone(),
        metrics: metrics.clone(),
        status: status.clone(),
    });
    let http = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "HTTP endpoint failed");
        }
    });
    let syncer = Syncer {
        endpoints: settings.store_endpoints.clone(),
        catalog: Catalog::new(settings.zones.clone()),
        published: published.clone(),
        notifier: Notifier::start(metrics.clone()),
        metrics,
        status: status.clone(),
        published_changed: published_changed.clone(),
    };
    let sync = tokio::spawn(syncer.run());
    let report = match &settings.node {
        Some(node) => Some(tokio::spawn(
            Reporter {
                endpoints: settings.store_endpoints.clone(),
                node: node.clone(),
                published: published.clone(),
                status: status.clone(),
                published_changed,
            }
            .run(),
        )),
        None => {
            tracing::info!("no --node: this server's status is not written to the store");
            None
        }
    };
    tracing::info!(
        dns = ?bound,
        http = %settings.http_listen,
        store = ?settings.store_endpoints,
        zones = ?settings.zones,
        udp_sockets = settings.udp_sockets,
        node = ?settings.node,
        "uc-dns running"
    );
    let token = server.shutdown_token().clone();
    tokio::spawn(async move {
        shutdown.await;
        token.cancel();
    });
    let result = server.block_until_done().await.map_err(DaemonError::from);
    sync.abort();
    http.abort();
    if let (Some(report), Some(node)) = (report, &settings.node) {
        report.abort();
        Reporter::clear(&settings.store_endpoints, node).await;
    }
    tracing::info!("stopped");
    result
}
