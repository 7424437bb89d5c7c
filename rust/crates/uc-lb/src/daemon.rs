//! uc-lb as a daemon: the HTTP endpoint, the store sync, the supervisor
//! of listeners and the status writer, until SIGTERM; then the listeners
//! stop and this node's statuses are removed.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::sync::watch;

use crate::http::{self, Shared};
use crate::metrics::Metrics;
use crate::proxy::Timeouts;
use crate::report::Reports;
use crate::spec::Selection;
use crate::status::StatusWriter;
use crate::supervisor::Supervisor;
use crate::sync::Syncer;
use crate::vip::{VipMetrics, VipSettings, Vips};
use crate::xdp::metrics::XdpMetrics;
use crate::xdp::Fastpath;

/// How this uc-lb runs: from the config file or from flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub store_endpoints: Vec<String>,
    pub http_listen: SocketAddr,
    pub selection: Selection,
    /// The node, for listeners with a null address (`None`: flags without --node).
    pub node: Option<String>,
    /// The node name the statuses are written under.
    pub status_node: String,
    pub timeouts: Timeouts,
    pub vip: VipSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("HTTP endpoint: {0}")]
    Http(#[source] uc_daemon::BindError),
    #[error("HTTP endpoint stopped: {0}")]
    Serve(#[source] std::io::Error),
}

pub async fn run(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let mut metrics = Metrics::new();
    let vip_metrics = VipMetrics::register(metrics.registry_mut());
    let fastpath = Arc::new(Fastpath::default());
    metrics
        .registry_mut()
        .register_collector(Box::new(XdpMetrics(fastpath.clone())));
    let metrics = Arc::new(metrics);
    let reports = Arc::new(Reports::default());
    let connected = Arc::new(AtomicBool::new(false));
    let (desired_tx, desired_rx) = watch::channel(None);
    let listener = uc_daemon::bind_http(settings.http_listen)
        .await
        .map_err(DaemonError::Http)?;
    let app = http::router(Shared {
        node: settings.status_node.clone(),
        reports: reports.clone(),
        metrics: metrics.clone(),
        connected: connected.clone(),
        desired: desired_rx.clone(),
    });
    let syncer = Syncer {
        endpoints: settings.store_endpoints.clone(),
        selection: settings.selection.clone(),
        node: settings.node.clone(),
        desired: desired_tx,
        metrics: metrics.clone(),
        connected,
    };
    let supervisor = Supervisor::new(metrics, reports.clone(), settings.timeouts);
    let (stop_vips, vips_stopped) = watch::channel(false);
    let vips = match Vips::new(
        settings.store_endpoints.clone(),
        settings.status_node.clone(),
        settings.vip.clone(),
        reports.vips.clone(),
        reports.clone(),
        vip_metrics,
    ) {
        Ok(vips) => Some(tokio::spawn(vips.run(desired_rx.clone(), vips_stopped))),
        Err(err) => {
            tracing::error!(%err, "VIPs cannot be held on this node");
            None
        }
    };
    let writer = StatusWriter {
        endpoints: settings.store_endpoints.clone(),
        node: settings.status_node.clone(),
        reports,
    };
    let tasks = [
        tokio::spawn(
            fastpath
                .clone()
                .run(desired_rx.clone(), writer.reports.clone()),
        ),
        tokio::spawn(syncer.run()),
        tokio::spawn(supervisor.run(desired_rx)),
        tokio::spawn(writer.run()),
    ];
    tracing::info!(
        http = %settings.http_listen,
        store = ?settings.store_endpoints,
        selection = ?settings.selection,
        node = %settings.status_node,
        "uc-lb running"
    );
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(DaemonError::Serve);
    // VIPs first: their addresses go down and their keys are deleted, so
    // another node takes them while this one closes its listeners.
    let _ = stop_vips.send(true);
    if let Some(vips) = vips {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(4), vips).await;
    }
    for task in tasks {
        task.abort();
    }
    fastpath.unload();
    StatusWriter::clear(&settings.store_endpoints, &settings.status_node).await;
    tracing::info!("stopped");
    result
}
