//! HTTP/1.1 upgrades (WebSocket and the like) passed through: the request
//! keeps its `Connection: upgrade` and `Upgrade` headers towards the
//! backend, and when the backend switches protocols (101), the client's
//! and the backend's connections are joined and bytes copied both ways
//! until either closes or the backend's drain timeout ends it.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, Version};
use hyper_util::rt::TokioIo;
use tracing::Instrument;

use crate::l7::forward::{strip_hop_by_hop, ProxyBody};
use crate::pool::Lease;

/// A client's request to switch protocols.
pub struct Requested {
    protocol: HeaderValue,
    client: OnUpgrade,
}

/// The upgrade `request` asks for, if any (HTTP/1.1 with `Upgrade` and
/// `Connection: upgrade`).
pub fn requested<B>(request: &mut Request<B>) -> Option<Requested> {
    if request.version() != Version::HTTP_11 {
        return None;
    }
    let asks = request
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = request.headers().get(header::UPGRADE)?.clone();
    asks.then(|| Requested {
        protocol,
        client: hyper::upgrade::on(request),
    })
}

impl Requested {
    /// Puts back the upgrade headers that the hop-by-hop cleaning removed.
    pub fn restore(&self, headers: &mut HeaderMap) {
        restore(headers, self.protocol.clone());
    }

    /// The backend's 101 for the client, and the tunnel once both sides
    /// have switched (`lease` counts it against the backend meanwhile).
    pub fn tunnel(self, mut response: Response<Incoming>, lease: Lease) -> Response<ProxyBody> {
        let backend_side = hyper::upgrade::on(&mut response);
        let (mut head, _) = response.into_parts();
        let protocol = head
            .headers
            .get(header::UPGRADE)
            .cloned()
            .unwrap_or(self.protocol);
        strip_hop_by_hop(&mut head.headers);
        restore(&mut head.headers, protocol);
        let client_side = self.client;
        tokio::spawn(
            async move {
                let (client, backend) = match tokio::try_join!(client_side, backend_side) {
                    Ok(both) => both,
                    Err(err) => {
                        tracing::info!(%err, "upgrade failed");
                        return;
                    }
                };
                let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
                tokio::select! {
                    copied = tokio::io::copy_bidirectional(&mut client, &mut backend) => match copied {
                        Ok((inbound, outbound)) => {
                            lease.backend.count_bytes(inbound, outbound);
                            tracing::debug!(inbound, outbound, "upgraded connection closed");
                        }
                        Err(err) => tracing::debug!(%err, "upgraded connection ended with an error"),
                    },
                    () = lease.backend.closed() => {
                        tracing::info!(backend = %lease.backend.addr, "upgraded connection closed: the backend's drain timeout ended");
                    }
                }
            }
            .instrument(tracing::Span::current()),
        );
        Response::from_parts(
            head,
            Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        )
    }
}

fn restore(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}
