//! What every daemon's HTTP server (axum) shares.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

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
