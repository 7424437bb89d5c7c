//! The deployer's HTTP surface: the binary cache, `/health` and `/metrics`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::process::ChildStdout;
use tokio_util::io::ReaderStream;
use uc_daemon::metrics;

use crate::cache::Cache;

pub fn router(cache: Arc<Cache>) -> Router {
    let mut registry = metrics::registry("uc_deployer");
    cache.metrics.register(&mut registry);
    let registry = Arc::new(registry);
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = metrics::render(&registry);
                async move { uc_daemon::http::metrics_response(body) }
            }),
        )
        .route("/health", get(health))
        .route("/nix-cache-info", get(cache_info))
        .route("/nar/{file}", get(nar))
        .route("/{file}", get(narinfo))
        .with_state(cache)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `GET /health`'s answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    status: &'static str,
    served_paths: usize,
}

async fn health(State(cache): State<Arc<Cache>>) -> Response {
    let health = Health {
        status: "ok",
        served_paths: cache.served_paths(),
    };
    crate::api::json(StatusCode::OK, &health)
}

async fn cache_info() -> Response {
    // Lower priority number wins: prefer the cluster cache over cache.nixos.org (40).
    let body = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n".to_owned();
    text(StatusCode::OK, "text/x-nix-cache-info", body)
}

async fn narinfo(State(cache): State<Arc<Cache>>, Path(file): Path<String>) -> Response {
    let found = file
        .strip_suffix(".narinfo")
        .filter(|hash| hash.len() == 32)
        .and_then(|hash| cache.narinfo(hash));
    match found {
        Some(body) => text(StatusCode::OK, "text/x-nix-narinfo", body),
        None => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not served by this cache\n".into(),
        ),
    }
}

async fn nar(State(cache): State<Arc<Cache>>, Path(file): Path<String>) -> Response {
    let Some(path) = file
        .strip_suffix(".nar")
        .and_then(|stem| cache.nar_path(stem))
    else {
        return text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not served by this cache\n".into(),
        );
    };
    let mut child = match cache.store().dump(&path) {
        Ok(child) => child,
        Err(err) => {
            tracing::error!(%path, %err, "cannot dump NAR");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("{err}\n"),
            );
        }
    };
    let Some(stdout) = child.stdout.take() else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "no NAR output\n".into(),
        );
    };
    cache.metrics.nar_requests.inc();
    tracing::info!(%path, "serving NAR");
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        // Read while it runs: a full pipe would stall the dump.
        let mut message = String::new();
        if let Some(mut stderr) = stderr {
            use tokio::io::AsyncReadExt;
            let _ = stderr.read_to_string(&mut message).await;
        }
        match child.wait().await {
            Ok(status) if status.success() => {}
            // A client that hangs up makes nix-store die of SIGPIPE; that is not our failure.
            Ok(status) => {
                tracing::warn!(%path, %status, stderr = message.trim(), "nix-store --dump ended early; the client got a cut NAR")
            }
            Err(err) => tracing::warn!(%path, %err, "cannot wait for nix-store --dump"),
        }
    });
    // Streamed as nix-store writes it: a NAR is never held in memory whole.
    let counted = Counted {
        inner: stdout,
        cache: cache.clone(),
    };
    (
        [(header::CONTENT_TYPE, "application/x-nix-nar")],
        Body::from_stream(ReaderStream::with_capacity(counted, 256 * 1024)),
    )
        .into_response()
}

/// Counts the NAR bytes sent, for /metrics.
struct Counted {
    inner: ChildStdout,
    cache: Arc<Cache>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.cache.metrics.nar_bytes.inc_by(read);
        poll
    }
}
