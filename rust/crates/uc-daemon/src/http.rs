//! What every daemon's HTTP server (axum) shares: the request span, and
//! the answers `/metrics` and JSON endpoints give.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::metrics;

/// Middleware running each request's handler in a `request` span with its
/// method and path, so the handler's log lines say which request they
/// belong to: `router.layer(axum::middleware::from_fn(request_span))`.
pub async fn request_span(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path()
    );
    next.run(request).instrument(span).await
}

/// Serves `app` on `listener` (from [`crate::bind_http`]) in a task of its
/// own while the daemon does its work; a failure of the endpoint is logged.
pub fn spawn_serve(listener: TcpListener, app: Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "HTTP endpoint failed");
        }
    })
}

/// The answer to `GET /metrics`: `text` from [`metrics::render`], with its
/// Content-Type.
pub fn metrics_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

/// A JSON answer: `body` as compact JSON (a struct's fields in their order;
/// pass a `serde_json::Value` for keys sorted) with `Content-Type:
/// application/json`.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let text = serde_json::to_string(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}
