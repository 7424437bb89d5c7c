//! NOTIFY (RFC 1996): when a zone's serial goes up, each of its
//! secondaries is told over UDP, and asked again after 1, 2, 4 and 8 s
//! until it acknowledges. A newer serial replaces a NOTIFY still being
//! retried. `notices` and the message codec are pure; `Notifier` is the
//! task that sends.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncodable;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::snapshot::Snapshot;

/// How long each attempt waits for the acknowledgement: 5 sends in ~31 s.
pub const WAITS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

/// A zone whose secondaries are to be told of its new serial.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub zone: Name,
    pub serial: u32,
    pub soa: Record,
    pub secondaries: Vec<SocketAddr>,
}

/// Zones of `next` with secondaries whose serial is not `previous`'s (new
/// zones too: a secondary then checks it is current).
pub fn notices(previous: &Snapshot, next: &Snapshot) -> Vec<Notice> {
    let mut notices: Vec<Notice> = next
        .zones()
        .filter(|zone| !zone.secondaries.is_empty())
        .filter(|zone| {
            let apex = hickory_server::proto::rr::LowerName::new(&zone.apex);
            previous
                .zone(&apex)
                .is_none_or(|before| before.serial != zone.serial)
        })
        .map(|zone| Notice {
            zone: zone.apex.clone(),
            serial: zone.serial,
            soa: zone.soa().clone(),
            secondaries: zone.secondaries.clone(),
        })
        .collect();
    notices.sort_by(|a, b| a.zone.cmp(&b.zone));
    notices
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot encode the NOTIFY for {zone}: {source}")]
    Encode {
        zone: Name,
        #[source]
        source: Box<hickory_server::proto::ProtoError>,
    },
    #[error("cannot open a UDP socket to send NOTIFY to {target}: {source}")]
    Socket {
        target: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The NOTIFY message: opcode NOTIFY, AA, the zone's SOA as question and
/// its current SOA as answer (a hint, RFC 1996 §3.7).
pub fn message(notice: &Notice, id: u16) -> Result<Vec<u8>, NotifyError> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    message.add_query(Query::query(notice.zone.clone(), RecordType::SOA));
    message.add_answer(notice.soa.clone());
    message.to_bytes().map_err(|source| NotifyError::Encode {
        zone: notice.zone.clone(),
        source: Box::new(source),
    })
}

/// What a datagram says about NOTIFY `id`: `None` if it is not its answer.
pub fn acknowledgement(bytes: &[u8], id: u16) -> Option<ResponseCode> {
    let message = Message::from_vec(bytes).ok()?;
    let metadata = message.metadata;
    (metadata.id == id
        && metadata.message_type == MessageType::Response
        && metadata.op_code == OpCode::Notify)
        .then_some(metadata.response_code)
}

/// Sends NOTIFY in the background; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    queue: mpsc::UnboundedSender<Notice>,
}

impl Notifier {
    pub fn start(metrics: Arc<Metrics>) -> Notifier {
        let (queue, received) = mpsc::unbounded_channel();
        tokio::spawn(run(received, metrics));
        Notifier { queue }
    }

    pub fn send(&self, notices: Vec<Notice>) {
        for notice in notices {
            // Only fails once the task is gone, at shutdown.
            let _ = self.queue.send(notice);
        }
    }
}

async fn run(mut received: mpsc::UnboundedReceiver<Notice>, metrics: Arc<Metrics>) {
    let mut sending: HashMap<(Name, SocketAddr), JoinHandle<()>> = HashMap::new();
    while let Some(notice) = received.recv().await {
        sending.retain(|_, task| !task.is_finished());
        for target in &notice.secondaries {
            let key = (notice.zone.clone(), *target);
            if let Some(older) = sending.remove(&key) {
                older.abort();
            }
            let span = tracing::info_span!("notify", zone = %notice.zone, serial = notice.serial, secondary = %target);
            let task = notify(notice.clone(), *target, metrics.clone()).instrument(span);
            sending.insert(key, tokio::spawn(task));
        }
    }
}

/// Tells `target` of `notice` until it answers or the attempts run out.
async fn notify(notice: Notice, target: SocketAddr, metrics: Arc<Metrics>) {
    let zone = notice.zone.to_string();
    let result = match attempts(&notice, target, &metrics).await {
        Ok(Some(ResponseCode::NoError)) => {
            tracing::info!("NOTIFY acknowledged");
            "acknowledged"
        }
        Ok(Some(rcode)) => {
            tracing::warn!(%rcode, "NOTIFY refused by the secondary; does its ACL allow notify from this address?");
            "refused"
        }
        Ok(None) => {
            tracing::warn!(attempts = WAITS.len(), "NOTIFY not acknowledged; the secondary will find the new serial at its SOA refresh");
            "unanswered"
        }
        Err(err) => {
            tracing::warn!(%err, "NOTIFY not sent");
            "unsent"
        }
    };
    metrics.observe_notify(&zone, result);
}

async fn attempts(
    notice: &Notice,
    target: SocketAddr,
    metrics: &Metrics,
) -> Result<Option<ResponseCode>, NotifyError> {
    let local = match target {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket_error = |source| NotifyError::Socket { target, source };
    let socket = UdpSocket::bind(local).await.map_err(socket_error)?;
    socket.connect(target).await.map_err(socket_error)?;
    let hasher = RandomState::new();
    let mut buffer = vec![0; 4096];
    for (attempt, wait) in WAITS.iter().enumerate() {
        let id = hasher.hash_one((notice.serial, attempt)) as u16;
        let bytes = message(notice, id)?;
        metrics.notify_sent.inc();
        if let Err(err) = socket.send(&bytes).await {
            // E.g. no route yet: the next attempt may get through.
            tracing::debug!(%err, attempt, "NOTIFY not sent");
        }
        let answer = tokio::time::timeout(*wait, async {
            loop {
                match socket.recv(&mut buffer).await {
                    Ok(length) => {
                        if let Some(rcode) = acknowledgement(&buffer[..length], id) {
                            return Some(rcode);
                        }
                    }
                    // ICMP port unreachable from an earlier send: wait on.
                    Err(_) => tokio::time::sleep(*wait).await,
                }
            }
        })
        .await;
        if let Ok(Some(rcode)) = answer {
            return Ok(Some(rcode));
        }
        tracing::debug!(attempt, "NOTIFY unanswered");
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
