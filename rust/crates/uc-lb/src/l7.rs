//! L7: HTTP/1.1 and HTTP/2 from clients (h2 by ALPN over TLS, or by its
//! preface in clear text), each request forwarded (`forward`) to a backend
//! of its route over HTTP/1.1 (over TLS with `backend_tls`) with
//! keep-alive pools, upgrades (WebSocket)
//! passed through (`upgrade`). A client that is too slow with a request
//! head or a TLS handshake, or silent after connecting, is cut off after
//! the client timeout; a connection idle (no byte either way, no request
//! waiting for its backend) after the idle timeout.

pub mod backend_tls;
pub mod forward;
pub mod tracked;
pub mod upgrade;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::proxy::{next_id, Activity, Context, Open, Settings};
use crate::tls::Tls;
use tracked::Tracked;

pub use forward::{backend_client, BackendClient};

/// The HTTP/2 connection preface a clear-text h2 client starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub async fn serve(listener: TcpListener, ctx: Arc<Context>, tls: Option<Arc<Tls>>) {
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
        let (ctx, tls) = (ctx.clone(), tls.clone());
        tokio::spawn(connection(stream, peer, ctx, tls).instrument(span));
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, ctx: Arc<Context>, tls: Option<Arc<Tls>>) {
    let _open = Open::new(&ctx);
    let _ = stream.set_nodelay(true);
    let settings = ctx.settings();
    let timeout = settings.timeouts.client;
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
            serve_http(stream, h2, peer, "https", ctx, settings).await;
        }
        None => match sniff(&stream, timeout).await {
            Some(h2) => serve_http(stream, h2, peer, "http", ctx, settings).await,
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
    settings: Arc<Settings>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let waiting = Arc::new(AtomicUsize::new(0));
    let io = TokioIo::new(Tracked::new(io, activity.clone()));
    let timeout = settings.timeouts.client;
    let idle = settings.idle;
    let (service_ctx, service_waiting) = (ctx.clone(), waiting.clone());
    let peer = Arc::new(forward::Peer::new(peer));
    let service = service_fn(move |request| {
        forward::handle(
            request,
            peer.clone(),
            scheme,
            service_ctx.clone(),
            settings.clone(),
            service_waiting.clone(),
        )
    });
    let busy = || waiting.load(Ordering::Relaxed) > 0;
    let result = if h2 {
        let serving = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // Pings would count as activity and keep an idle connection
            // open forever: with an idle timeout, that closes it instead.
            .keep_alive_interval(idle.is_none().then_some(timeout))
            .keep_alive_timeout(timeout)
            .serve_connection(io, service);
        tokio::select! {
            result = serving => result,
            () = activity.idle(idle, busy) => return tracing::debug!(?idle, "closed: idle"),
        }
    } else {
        let serving = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeout)
            .keep_alive(true)
            .serve_connection(io, service)
            .with_upgrades();
        tokio::select! {
            result = serving => result,
            () = activity.idle(idle, busy) => return tracing::debug!(?idle, "closed: idle"),
        }
    };
    if let Err(err) = result {
        tracing::debug!(%err, "client connection ended with an error");
    }
}
