//! L4 TCP: each client connection is joined to a backend connection and
//! bytes are copied both ways until either side closes, or the backend's
//! drain timeout ends it. A backend that refuses the connection is skipped
//! for the next one (up to `TRIES`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::pool::{flow_hash, Lease};
use crate::proxy::{next_id, Context, Open, TRIES};
use crate::proxy_protocol::{self, Transport};

pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // EMFILE and friends: wait rather than spin.
                tracing::warn!(listener = %ctx.name, %err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let span = tracing::info_span!("conn", listener = %ctx.name, id = next_id(), %peer);
        tokio::spawn(proxy(client, peer, ctx.clone()).instrument(span));
    }
}

async fn proxy(mut client: TcpStream, peer: SocketAddr, ctx: Arc<Context>) {
    let _open = Open::new(&ctx);
    let _ = client.set_nodelay(true);
    let Some((lease, mut upstream)) = connect(&ctx, peer).await else {
        return;
    };
    let backend = lease.backend.addr;
    if ctx.proxy_protocol {
        let header = proxy_protocol::header(Transport::Stream, peer, ctx.local);
        if let Err(err) = upstream.write_all(&header).await {
            tracing::warn!(%backend, %err, "cannot send the PROXY header");
            return;
        }
    }
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
            Ok((inbound, outbound)) => {
                ctx.bytes(backend, inbound, outbound);
                tracing::debug!(%backend, inbound, outbound, "closed");
            }
            Err(err) => tracing::debug!(%backend, %err, "connection ended with an error"),
        },
        () = lease.backend.closed() => {
            tracing::info!(%backend, "closed: the backend's drain timeout ended");
        }
    }
}

/// A backend connection for a client, or `None` (logged) when none in
/// rotation accepts one.
pub async fn connect(ctx: &Context, peer: SocketAddr) -> Option<(Lease, TcpStream)> {
    let mut tried = Vec::new();
    while tried.len() < TRIES {
        let Some(lease) = ctx.pool.pick(flow_hash(peer), &tried) else {
            break;
        };
        let backend = lease.backend.addr;
        let started = std::time::Instant::now();
        match tokio::time::timeout(ctx.timeouts.connect, TcpStream::connect(backend)).await {
            Ok(Ok(stream)) => {
                ctx.backend_latency(backend, started.elapsed());
                let _ = stream.set_nodelay(true);
                return Some((lease, stream));
            }
            Ok(Err(err)) => tracing::warn!(%backend, %err, "backend refused; trying another"),
            Err(_) => {
                tracing::warn!(%backend, timeout = ?ctx.timeouts.connect, "backend connect timed out; trying another")
            }
        }
        ctx.connect_failed(backend);
        tried.push(backend);
    }
    tracing::warn!(tried = tried.len(), "no backend to send the connection to");
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::balance::Policy;
    use crate::health::State;
    use crate::metrics::Metrics;
    use crate::pool::Pool;
    use crate::proxy::Timeouts;
    use tokio::io::AsyncReadExt;

    /// With `proxy_protocol`, the backend reads the v2 header naming the
    /// client and the listener first, then the client's bytes.
    #[tokio::test]
    async fn a_proxy_header_goes_first_when_asked() {
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_addr = backend.local_addr().unwrap();
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = front.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let pool = Arc::new(Pool::new("t", Policy::RoundRobin, metrics.clone()));
        let (added, _) = pool.update(&[backend_addr], Policy::RoundRobin);
        pool.set_state(&added[0], State::Up);
        let ctx = Arc::new(Context {
            name: "t".into(),
            pool,
            metrics,
            timeouts: Timeouts::default(),
            proxy_protocol: true,
            local,
        });
        let serving = tokio::spawn(serve(front, ctx));
        let mut client = TcpStream::connect(local).await.unwrap();
        let client_addr = client.local_addr().unwrap();
        client.write_all(b"hello").await.unwrap();
        let (mut upstream, _) = backend.accept().await.unwrap();
        let expected = proxy_protocol::header(Transport::Stream, client_addr, local);
        let mut got = vec![0u8; expected.len() + 5];
        upstream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..expected.len()], &expected[..]);
        assert_eq!(&got[expected.len()..], b"hello");
        serving.abort();
    }
}
