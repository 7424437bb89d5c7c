//! L7: HTTP/1.1 and HTTP/2 from clients (h2 by ALPN over TLS, or by its
//! preface in clear text), each request forwarded (`forward`) to a backend
//! over HTTP/1.1 with keep-alive pools. A client that is too slow with a
//! request head or a TLS handshake, or silent after connecting, is cut off
//! after the client timeout.

pub mod forward;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::proxy::{next_id, Context, Open};
use crate::tls::Tls;

pub use forward::{backend_client, BackendClient};

/// The HTTP/2 connection preface a clear-text h2 client starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub async fn serve(
    listener: TcpListener,
    ctx: Arc<Context>,
    tls: Option<Arc<Tls>>,
    client: BackendClient,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(listener = %ctx.name, %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let span = tracing::info_span!("conn", listener = %ctx.name, id = next_id(), %peer);
        let (ctx, tls, client) = (ctx.clone(), tls.clone(), client.clone());
        tokio::spawn(connection(stream, peer, ctx, tls, client).instrument(span));
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Context>,
    tls: Option<Arc<Tls>>,
    client: BackendClient,
) {
    let _open = Open::new(&ctx);
    let _ = stream.set_nodelay(true);
    let timeout = ctx.timeouts.client;
    match tls {
        Some(tls) => {
            let accepted = tokio::time::timeout(timeout, tls.acceptor().accept(stream)).await;
            let stream = match accepted {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::info!(%err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(?timeout, "TLS handshake timed out");
                    return;
                }
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            serve_http(stream, h2, peer, "https", ctx, client).await;
        }
        None => match sniff(&stream, timeout).await {
            Some(h2) => serve_http(stream, h2, peer, "http", ctx, client).await,
            None => tracing::info!(?timeout, "client sent no request in time"),
        },
    }
}

/// Whether a clear-text client speaks h2 (its first bytes are the
/// preface), waiting at most `timeout` for enough bytes to tell; `None`
/// when the client sent nothing telling in time.
async fn sniff(stream: &TcpStream, timeout: Duration) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 24];
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if peeked == 0 {
            return None;
        }
        if buf[..peeked] != H2_PREFACE[..peeked] {
            return Some(false);
        }
        if peeked == H2_PREFACE.len() {
            return Some(true);
        }
        // A partial preface: wait for the rest (peek returns at once).
        tokio::time::sleep(Duration::from_millis(5)).await;
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
    }
}

async fn serve_http<I>(
    io: I,
    h2: bool,
    peer: SocketAddr,
    scheme: &'static str,
    ctx: Arc<Context>,
    client: BackendClient,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let service_ctx = ctx.clone();
    let service = service_fn(move |request| {
        forward::handle(request, peer, scheme, service_ctx.clone(), client.clone())
    });
    let timeout = ctx.timeouts.client;
    let result = if h2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(timeout))
            .keep_alive_timeout(timeout)
            .serve_connection(io, service)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeout)
            .keep_alive(true)
            .serve_connection(io, service)
            .await
    };
    if let Err(err) = result {
        tracing::debug!(%err, "client connection ended with an error");
    }
}
