//! L4 TCP: each client connection is joined to a backend connection and
//! bytes are copied both ways until either side closes, the connection is
//! idle for the listener's idle timeout, or the backend's drain timeout
//! ends it. A backend that refuses the connection is skipped for the next
//! one (up to `TRIES`).

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;
use uc_daemon::metrics::Counter;

use crate::pool::{flow_hash, Lease};
use crate::proxy::{next_id, Activity, Context, Open, TRIES};
use crate::proxy_protocol::{self, Transport};

/// Bytes read (or spliced) at once per direction: 64 KiB, as a loopback
/// or 10G segment train delivers them (tokio's copy takes 8 KiB, a
/// quarter of that per system call).
const COPY_BUFFER: usize = 64 * 1024;

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
    let settings = ctx.settings();
    let _ = client.set_nodelay(true);
    let Some((lease, mut upstream)) = connect(&ctx, peer, settings.timeouts.connect).await else {
        return;
    };
    let backend = lease.backend.addr;
    if settings.proxy_protocol {
        let header = proxy_protocol::header(Transport::Stream, peer, ctx.local);
        if let Err(err) = upstream.write_all(&header).await {
            tracing::warn!(%backend, %err, "cannot send the PROXY header");
            return;
        }
    }
    let activity = Activity::default();
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let copied = async {
        tokio::try_join!(
            pump(
                &mut client_read,
                &mut upstream_write,
                &activity,
                &lease,
                true
            ),
            pump(
                &mut upstream_read,
                &mut client_write,
                &activity,
                &lease,
                false
            ),
        )
    };
    tokio::select! {
        copied = copied => match copied {
            Ok(_) => tracing::debug!(%backend, "closed"),
            Err(err) => tracing::debug!(%backend, %err, "connection ended with an error"),
        },
        () = activity.idle(settings.idle, || false) => {
            tracing::debug!(%backend, idle = ?settings.idle, "closed: idle");
        }
        () = lease.backend.closed() => {
            tracing::info!(%backend, "closed: the backend's drain timeout ended");
        }
    }
}

/// Copies `from` to `to` until `from` ends (then shuts `to`'s writing
/// half, so the other side sees the end), counting the bytes as they go
/// (`inbound`: client to backend). Through a buffer at first; once a read
/// fills the whole buffer (a bulk transfer, where it pays), through a pipe
/// with splice(2), so the bytes stay in the kernel. Small exchanges (a
/// request, its answer) never pay for the pipe.
async fn pump(
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
    activity: &Activity,
    lease: &Lease,
    inbound: bool,
) -> std::io::Result<()> {
    let counter = if inbound {
        &lease.backend.metrics.bytes_in
    } else {
        &lease.backend.metrics.bytes_out
    };
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        activity.touch();
        to.write_all(&buf[..n]).await?;
        counter.inc_by(n as u64);
        if n == buf.len() {
            match rustix::pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC) {
                Ok(pipe) => {
                    drop(buf);
                    return splice(from.as_ref(), to, pipe, activity, counter).await;
                }
                Err(err) => tracing::debug!(%err, "no pipe for splice(2); copying on"),
            }
        }
    }
}

/// Moves `from` to `to` through `pipe` (its read end, its write end) with
/// splice(2), until `from` ends (then shuts `to`'s writing half).
async fn splice(
    from: &TcpStream,
    to: &mut WriteHalf<'_>,
    (pipe_out, pipe_in): (OwnedFd, OwnedFd),
    activity: &Activity,
    counter: &Counter,
) -> std::io::Result<()> {
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    loop {
        let n = spliced(from, Interest::READABLE, || {
            rustix::pipe::splice(from, None, &pipe_in, None, COPY_BUFFER, flags)
        })
        .await?;
        if n == 0 {
            return to.shutdown().await;
        }
        activity.touch();
        let sink: &TcpStream = to.as_ref();
        let mut left = n;
        while left > 0 {
            left -= spliced(sink, Interest::WRITABLE, || {
                rustix::pipe::splice(&pipe_out, None, sink, None, left, flags)
            })
            .await?;
        }
        counter.inc_by(n as u64);
    }
}

/// One splice(2) on `socket` once it is ready for `interest`.
async fn spliced(
    socket: &TcpStream,
    interest: Interest,
    mut call: impl FnMut() -> rustix::io::Result<usize>,
) -> std::io::Result<usize> {
    loop {
        socket.ready(interest).await?;
        match socket.try_io(interest, || Ok(call()?)) {
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            done => return done,
        }
    }
}

/// A backend connection for a client, or `None` (logged) when none in
/// rotation accepts one.
pub async fn connect(
    ctx: &Context,
    peer: SocketAddr,
    timeout: std::time::Duration,
) -> Option<(Lease, TcpStream)> {
    let mut tried = Vec::new();
    while tried.len() < TRIES {
        let Some(lease) = ctx.pool.pick(0, flow_hash(peer), &tried) else {
            break;
        };
        let backend = lease.backend.addr;
        let started = std::time::Instant::now();
        match tokio::time::timeout(timeout, TcpStream::connect(backend)).await {
            Ok(Ok(stream)) => {
                lease
                    .backend
                    .metrics
                    .latency
                    .observe(started.elapsed().as_secs_f64());
                let _ = stream.set_nodelay(true);
                return Some((lease, stream));
            }
            Ok(Err(err)) => tracing::warn!(%backend, %err, "backend refused; trying another"),
            Err(_) => {
                tracing::warn!(%backend, ?timeout, "backend connect timed out; trying another")
            }
        }
        lease.backend.metrics.failures.inc();
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
    use crate::proxy::{Settings, Timeouts};
    use crate::spec::Group;

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
        let group = Group {
            matcher: None,
            backends: vec![backend_addr],
            weights: Default::default(),
        };
        let (added, _) = pool.update(&[group], Policy::RoundRobin);
        pool.set_state(&added[0], State::Up);
        let settings = Settings::new(Timeouts::default(), None, true, None);
        let ctx = Arc::new(Context::new("t", pool, metrics, local, settings));
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
