//! L4 UDP: each client address is a session with a backend, kept while
//! datagrams flow either way (idle timeout). A session has its own
//! connected socket to the backend, so replies find their client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tracing::Instrument;

use crate::pool::{flow_hash, Backend, Lease};
use crate::proxy::{next_id, Context, Open};
use crate::proxy_protocol::{self, Transport};

/// A client's session: the socket towards its backend, and the backend.
type Session = (Arc<UdpSocket>, Arc<Backend>);
type Sessions = Arc<Mutex<HashMap<SocketAddr, Session>>>;

pub async fn serve(socket: UdpSocket, ctx: Arc<Context>) {
    let socket = Arc::new(socket);
    let sessions: Sessions = Arc::default();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(err) => {
                tracing::debug!(listener = %ctx.name, %err, "recv failed");
                continue;
            }
        };
        let existing = lock(&sessions).get(&peer).cloned();
        let (upstream, backend) = match existing {
            Some(session) => session,
            None => match open(&ctx, peer, &socket, &sessions).await {
                Some(session) => session,
                None => continue,
            },
        };
        let datagram = &buf[..len];
        let sent = if ctx.settings().proxy_protocol {
            let mut framed = proxy_protocol::header(Transport::Datagram, peer, ctx.local);
            framed.extend_from_slice(datagram);
            upstream.send(&framed).await
        } else {
            upstream.send(datagram).await
        };
        match sent {
            Ok(_) => backend.count_bytes(len as u64, 0),
            Err(err) => {
                tracing::debug!(listener = %ctx.name, %peer, %err, "send to backend failed")
            }
        }
    }
}

fn lock(sessions: &Sessions) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Session>> {
    match sessions.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

async fn open(
    ctx: &Arc<Context>,
    peer: SocketAddr,
    socket: &Arc<UdpSocket>,
    sessions: &Sessions,
) -> Option<Session> {
    let id = next_id();
    let Some(lease) = ctx.pool.pick(0, flow_hash(peer), &[]) else {
        tracing::warn!(listener = %ctx.name, %peer, "no backend in rotation; datagram dropped");
        return None;
    };
    let backend = lease.backend.addr;
    let local: SocketAddr = if backend.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let upstream = match UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(%backend, %err, "cannot open a socket towards the backend");
            return None;
        }
    };
    if let Err(err) = upstream.connect(backend).await {
        lease.backend.metrics.failures.inc();
        tracing::warn!(%backend, %err, "cannot reach the backend");
        return None;
    }
    let upstream = Arc::new(upstream);
    let session = (upstream.clone(), lease.backend.clone());
    lock(sessions).insert(peer, session.clone());
    let span = tracing::info_span!("session", listener = %ctx.name, id, %peer, %backend);
    tokio::spawn(
        replies(
            ctx.clone(),
            lease,
            upstream.clone(),
            socket.clone(),
            peer,
            sessions.clone(),
        )
        .instrument(span),
    );
    Some(session)
}

/// Copies the backend's datagrams back to the client until the session is
/// idle or the backend is closed, then forgets the session.
async fn replies(
    ctx: Arc<Context>,
    lease: Lease,
    upstream: Arc<UdpSocket>,
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    sessions: Sessions,
) {
    let _open = Open::new(&ctx);
    let idle = ctx.settings().timeouts.udp_idle;
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            received = tokio::time::timeout(idle, upstream.recv(&mut buf)) => match received {
                Ok(Ok(len)) => {
                    if let Err(err) = socket.send_to(&buf[..len], peer).await {
                        tracing::debug!(%err, "send to client failed");
                    }
                    lease.backend.count_bytes(0, len as u64);
                }
                Ok(Err(err)) => {
                    tracing::debug!(%err, "backend socket error; session ends");
                    break;
                }
                Err(_) => break,
            },
            () = lease.backend.closed() => break,
        }
    }
    let mut guard = lock(&sessions);
    if guard
        .get(&peer)
        .is_some_and(|(s, _)| Arc::ptr_eq(s, &upstream))
    {
        guard.remove(&peer);
    }
}
