//! One client request to one backend: headers cleaned of hop-by-hop
//! fields, X-Forwarded-For/-Proto set, sent through the listener's
//! keep-alive pool; an idempotent request without a body is retried on
//! another backend when the connection fails. uc-lb's own answers: 503 no
//! backend in rotation, 502 backend unreachable or broken, 504 no
//! response head in time; each with a one-line body saying so.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::{Parts as UriParts, PathAndQuery, Scheme};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tracing::Instrument;

use crate::l7::backend_tls::{tls_failure, BackendTls, Connector};
use crate::l7::upgrade;
use crate::pool::flow_hash;
use crate::proxy::{next_id, Context, Settings, Timeouts, TRIES};

pub type ProxyBody = BoxBody<Bytes, hyper::Error>;
pub type BackendClient = Client<Connector, ProxyBody>;

/// A listener's keep-alive pool towards its backends (HTTP/1.1, over TLS
/// when `tls` is given).
pub fn backend_client(timeouts: &Timeouts, tls: Option<Arc<BackendTls>>) -> BackendClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(timeouts.connect));
    http.set_nodelay(true);
    let connector = Connector {
        http,
        tls,
        timeout: timeouts.connect,
    };
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build(connector)
}

/// The client of a connection, with its address as X-Forwarded-For
/// appends it (made once per connection, not per request).
pub struct Peer {
    pub addr: SocketAddr,
    ip: HeaderValue,
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Peer {
        let ip = HeaderValue::from_str(&addr.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Peer { addr, ip }
    }
}

pub async fn handle(
    mut request: Request<Incoming>,
    peer: Arc<Peer>,
    scheme: &'static str,
    ctx: Arc<Context>,
    settings: Arc<Settings>,
    waiting: Arc<AtomicUsize>,
) -> Result<Response<ProxyBody>, Infallible> {
    // Debug, not info: an info span per request is formatted per request.
    let span = tracing::debug_span!("request", id = next_id(), method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    let upgrade = upgrade::requested(&mut request);
    waiting.fetch_add(1, Ordering::Relaxed);
    let response = forward(request, &peer, scheme, &ctx, &settings, upgrade)
        .instrument(span)
        .await;
    waiting.fetch_sub(1, Ordering::Relaxed);
    ctx.count_request(response.status().as_u16());
    ctx.counters
        .latency
        .observe(started.elapsed().as_secs_f64());
    Ok(response)
}

async fn forward(
    request: Request<Incoming>,
    peer: &Peer,
    scheme: &'static str,
    ctx: &Context,
    settings: &Settings,
    mut upgrade: Option<upgrade::Requested>,
) -> Response<ProxyBody> {
    let (mut parts, body) = request.into_parts();
    let retryable = idempotent(&parts.method) && body.is_end_stream();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let group = ctx.pool.route(host, parts.uri.path());
    prepare(&mut parts.headers, &parts.uri, peer, scheme);
    let flow = flow_hash(peer.addr);
    if let Some(upgrade) = &upgrade {
        upgrade.restore(&mut parts.headers);
    }
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.version = Version::HTTP_11;
    let mut body = Some(body);
    let mut tried = Vec::new();
    let mut last_error = None;
    let timeouts = &settings.timeouts;
    while tried.len() < TRIES {
        let Some(lease) = ctx.pool.pick(group, flow, &tried) else {
            break;
        };
        let backend = lease.backend.addr;
        let mut uri = UriParts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(lease.backend.authority.clone());
        uri.path_and_query = Some(path.clone());
        let Ok(uri) = Uri::from_parts(uri) else {
            return answer(
                StatusCode::BAD_REQUEST,
                "uc-lb: the request target cannot be forwarded",
            );
        };
        let this_body = match body.take() {
            Some(b) if !b.is_end_stream() => {
                let sent_bytes = lease.backend.metrics.bytes_in.clone();
                b.map_frame(move |frame| {
                    if let Some(data) = frame.data_ref() {
                        sent_bytes.inc_by(data.len() as u64);
                    }
                    frame
                })
                .boxed()
            }
            _ => Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        };
        let mut outgoing = Request::from_parts(parts.clone(), this_body);
        let started = Instant::now();
        *outgoing.uri_mut() = uri;
        let sent = tokio::select! {
            sent = tokio::time::timeout(timeouts.response, settings.client.request(outgoing)) => sent,
            () = lease.backend.closed() => {
                tracing::info!(%backend, "request cut: the backend's drain timeout ended");
                return answer(StatusCode::BAD_GATEWAY, &format!("uc-lb: backend {backend} was drained before it answered, for listener {}", ctx.name));
            }
        };
        match sent {
            Ok(Ok(response)) => {
                lease
                    .backend
                    .metrics
                    .latency
                    .observe(started.elapsed().as_secs_f64());
                if let Some(upgrade) = upgrade.take() {
                    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                        return upgrade.tunnel(response, lease);
                    }
                }
                let received = lease.backend.metrics.bytes_out.clone();
                let (mut head, body) = response.into_parts();
                strip_hop_by_hop(&mut head.headers);
                // The lease (an open request to the backend) lasts as long as the body.
                let body = body.map_frame(move |frame| {
                    let _counted = &lease;
                    if let Some(data) = frame.data_ref() {
                        received.inc_by(data.len() as u64);
                    }
                    frame
                });
                return Response::from_parts(head, body.boxed());
            }
            Ok(Err(err)) if err.is_connect() => {
                last_error = Some(match tls_failure(&err) {
                    Some(tls) => {
                        tracing::warn!(%backend, reason = %tls.reason, "TLS to the backend failed");
                        tls.to_string()
                    }
                    None => {
                        tracing::warn!(%backend, %err, "cannot connect to the backend");
                        format!("backend {backend} unreachable")
                    }
                });
                lease.backend.metrics.failures.inc();
                tried.push(backend);
                if !retryable {
                    break;
                }
            }
            Ok(Err(err)) => {
                tracing::warn!(%backend, %err, "backend failed the request");
                return answer(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "uc-lb: backend {backend} failed the request for listener {}",
                        ctx.name
                    ),
                );
            }
            Err(_) => {
                tracing::warn!(%backend, timeout = ?timeouts.response, "backend sent no response in time");
                return answer(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!(
                        "uc-lb: backend {backend} sent no response within {:?} for listener {}",
                        timeouts.response, ctx.name
                    ),
                );
            }
        }
    }
    match last_error {
        Some(error) => answer(
            StatusCode::BAD_GATEWAY,
            &format!("uc-lb: {error} for listener {}", ctx.name),
        ),
        None => {
            tracing::warn!("no backend in rotation");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("uc-lb: no healthy backend for listener {}", ctx.name),
            )
        }
    }
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Request headers for the backend: hop-by-hop fields removed, Host kept
/// (or taken from an h2 request's authority), the client's address
/// appended to X-Forwarded-For, X-Forwarded-Proto set to how it came.
fn prepare(headers: &mut HeaderMap, uri: &Uri, peer: &Peer, scheme: &'static str) {
    strip_hop_by_hop(headers);
    if !headers.contains_key(header::HOST) {
        if let Some(host) = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            headers.insert(header::HOST, host);
        }
    }
    let forwarded = HeaderName::from_static("x-forwarded-for");
    let value = match headers.get(&forwarded).and_then(|v| v.to_str().ok()) {
        Some(previous) => HeaderValue::from_str(&format!("{previous}, {}", peer.addr.ip())).ok(),
        None => Some(peer.ip.clone()),
    };
    if let Some(value) = value {
        headers.insert(forwarded, value);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(scheme),
    );
}

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

pub fn answer(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from(format!("{text}\n")))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn forwarded_headers_and_hop_by_hop() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        let uri: Uri = "https://example.org/a?b".parse().unwrap();
        prepare(
            &mut headers,
            &uri,
            &Peer::new("198.51.100.2:4000".parse().unwrap()),
            "https",
        );
        assert_eq!(headers["x-forwarded-for"], "192.0.2.1, 198.51.100.2");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers[header::HOST], "example.org");
        assert_eq!(headers["x-kept"], "yes");
        for gone in ["connection", "x-private", "keep-alive"] {
            assert!(!headers.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn only_idempotent_methods_retry() {
        for (method, retry) in [
            (Method::GET, true),
            (Method::HEAD, true),
            (Method::PUT, true),
            (Method::POST, false),
            (Method::PATCH, false),
        ] {
            assert_eq!(idempotent(&method), retry, "{method}");
        }
    }
}
