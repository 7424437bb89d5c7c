//! The listeners: binding a URL, and serving gRPC on it (counting the
//! connections accepted) until the member stops.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;

use super::error::StartError;
use crate::node::Node;
use crate::raft::NodeId;

/// Every gRPC request runs in a span naming its method (e.g.
/// `/etcdserverpb.KV/Put`) and this member, so what a request logs can be
/// told from what others log (a write's `write applied` gives its revision,
/// which the `propose` span of its log entry carries too).
pub(super) fn request_span(
    member: NodeId,
) -> impl Fn(&http::Request<()>) -> tracing::Span + Clone + Send + Sync + 'static {
    let member = format!("{member:x}");
    move |request| tracing::info_span!("grpc", method = request.uri().path(), member = %member)
}

pub(super) fn socket_addr(url: &str) -> Result<SocketAddr, StartError> {
    let bad = |detail: &str| StartError::Config(format!("URL {url:?}: {detail}"));
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// is supported (no TLS yet)"))?;
    let host_port = rest.trim_end_matches('/');
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port
        .parse()
        .map_err(|_| bad("expected http://<ip>:<port>"))
}

pub(super) async fn bind(url: &str) -> Result<TcpListener, StartError> {
    let addr = socket_addr(url)?;
    TcpListener::bind(addr)
        .await
        .map_err(|err| StartError::Listen {
            url: url.to_string(),
            detail: if err.kind() == std::io::ErrorKind::AddrInUse {
                "address already in use (another etcd or uc-store running?)".to_string()
            } else {
                err.to_string()
            },
        })
}

/// The address `listener`, bound for `url`, ended up on (the port, for `:0`).
pub(super) fn bound_address(url: &str, listener: &TcpListener) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|e| StartError::Listen {
        url: url.to_owned(),
        detail: e.to_string(),
    })
}

pub(super) enum Listener {
    Peer,
    Client,
}

pub(super) async fn serve_grpc(
    router: tonic::transport::server::Router,
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
    url: String,
    node: Arc<Node>,
    kind: Listener,
) {
    // Small request/response messages: without TCP_NODELAY every answer
    // waits for the peer's delayed ACK (~40 ms).
    let incoming = TcpListenerStream::new(listener).map(move |stream| {
        let stream = stream?;
        let accepted = match kind {
            Listener::Peer => &node.accepted.peer,
            Listener::Client => &node.accepted.client,
        };
        accepted.inc();
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(crate::authority_fix::AuthorityFix::new(stream))
    });
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    if let Err(err) = router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
    {
        tracing::error!(%err, url, "gRPC listener failed");
    }
}
