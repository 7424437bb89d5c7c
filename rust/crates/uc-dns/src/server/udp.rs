//! uc-dns' own UDP path: one thread per SO_REUSEPORT socket reads a
//! datagram, answers it and sends the answer, with no task, channel or
//! wake-up between (hickory-server's `Server` spawned a task per UDP query
//! and handed the answer back to the socket's task: most of uc-dns' time
//! at full speed went to that, see docs/dns-performance.md). Plain queries
//! are answered from the worker's packet cache; the rest, and every miss,
//! go through the same `respond` and encoding as before. TCP, zone
//! transfers over TCP and NOTIFY stay on hickory-server's path.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{Record, RecordType};
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder,
};
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};

use super::packet_cache::{CacheKey, Entry, PacketCache};
use super::{respond, transfer_edns, transfer_metadata, Response};
use crate::metrics::{CacheLookup, Metrics, QueryCounters};
use crate::snapshot::{Published, Snapshot};

/// How long a worker waits for a datagram before it looks whether the
/// server is shutting down.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// Receive buffer asked for each socket: room for bursts while the worker
/// is not scheduled (the kernel caps it at net.core.rmem_max).
const RECEIVE_BUFFER: usize = 4 << 20;

/// What an answered query is counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    pub qtype: Option<RecordType>,
    pub rcode: ResponseCode,
    pub lookup: CacheLookup,
}

/// One UDP worker's state: its cache, the snapshot it was filled from,
/// and buffers reused for every query.
pub struct UdpWorker {
    published: Arc<Published>,
    metrics: Arc<Metrics>,
    counters: Arc<QueryCounters>,
    snapshot: Arc<Snapshot>,
    cache: PacketCache,
    key: CacheKey,
    /// The response being sent.
    pub out: Vec<u8>,
}

impl UdpWorker {
    pub fn new(published: Arc<Published>, metrics: Arc<Metrics>, cache_bytes: usize) -> UdpWorker {
        UdpWorker {
            snapshot: published.load(),
            counters: metrics.worker_counters(),
            published,
            metrics,
            cache: PacketCache::new(cache_bytes),
            key: CacheKey::default(),
            out: Vec::with_capacity(usize::from(super::MAX_UDP_PAYLOAD)),
        }
    }

    /// Answers datagrams on `socket` until `stopping` says so.
    pub fn run(mut self, socket: &UdpSocket, stopping: impl Fn() -> bool) {
        if let Err(err) = socket.set_read_timeout(Some(STOP_CHECK)) {
            tracing::warn!(%err, "UDP socket without a read timeout: shutdown waits for a datagram");
        }
        let mut packet = vec![0; usize::from(u16::MAX)];
        while !stopping() {
            let (len, client) = match socket.recv_from(&mut packet) {
                Ok(received) => received,
                Err(err)
                    if matches!(
                        err.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(err) => {
                    // ICMP errors of earlier sends show up here; keep serving.
                    tracing::debug!(%err, "UDP receive failed");
                    continue;
                }
            };
            let started = Instant::now();
            // Port 0 cannot be answered (and is spoofed), as hickory-server.
            if client.port() == 0 {
                continue;
            }
            let Some(answered) = self.answer(&packet[..len], client) else {
                continue;
            };
            if let Err(err) = socket.send_to(&self.out, client) {
                tracing::debug!(%err, %client, "answer not sent");
            }
            self.counters
                .observe(answered.qtype, answered.rcode, started.elapsed());
            self.counters.observe_cache(answered.lookup);
        }
    }

    /// The answer to `packet` from `client` in `self.out`; `None` when it
    /// gets none (shorter than a header, or a response).
    pub fn answer(&mut self, packet: &[u8], client: SocketAddr) -> Option<Answered> {
        let current = self.published.load();
        if !Arc::ptr_eq(&current, &self.snapshot) {
            self.cache.clear();
            self.snapshot = current;
        }
        if self.key.parse(packet) {
            let qtype = Some(self.key.qtype());
            if let Some(entry) = self.cache.get(&self.key) {
                entry.write(packet, &self.key, &mut self.out);
                let rcode = entry.rcode;
                let lookup = CacheLookup::Hit;
                return Some(Answered {
                    qtype,
                    rcode,
                    lookup,
                });
            }
            let canonical = self.key.canonical();
            let answered = full_answer(
                &self.snapshot,
                canonical,
                client,
                &self.metrics,
                &mut self.out,
            );
            if let Some(answered) = answered {
                if let Some(entry) = Entry::new(&self.key, &self.out, answered.rcode) {
                    entry.write(packet, &self.key, &mut self.out);
                    self.cache.insert(&self.key, entry);
                    let lookup = CacheLookup::Miss;
                    return Some(Answered { lookup, ..answered });
                }
            }
        }
        full_answer(
            &self.snapshot,
            packet.to_vec(),
            client,
            &self.metrics,
            &mut self.out,
        )
    }

    /// Entries and bytes cached now.
    pub fn cached(&self) -> (usize, usize) {
        (self.cache.len(), self.cache.bytes())
    }
}

/// `query` answered by the full path (parse, `respond`, encode) into `out`,
/// as hickory-server answered a datagram: nothing for fewer than 12 bytes;
/// FORMERR when only the header parses. Unlike hickory-server, a response
/// is never answered, not even a malformed one (reflection).
fn full_answer(
    snapshot: &Snapshot,
    query: Vec<u8>,
    client: SocketAddr,
    metrics: &Metrics,
    out: &mut Vec<u8>,
) -> Option<Answered> {
    let header = Header::read(&mut BinDecoder::new(&query)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    let lookup = CacheLookup::Bypass;
    let request = match Request::from_bytes(query, client, Protocol::Udp) {
        Ok(request) => request,
        Err(err) => {
            tracing::trace!(%err, %client, "malformed query");
            let no_questions = Queries::read(&mut BinDecoder::new(&[]), 0).ok()?;
            let response = MessageResponseBuilder::new(&no_questions, None)
                .error_msg(&header.metadata, ResponseCode::FormErr);
            let rcode = encode(response, 512, out);
            return Some(Answered {
                qtype: None,
                rcode,
                lookup,
            });
        }
    };
    match respond(snapshot, &request, metrics) {
        // Over UDP only an IXFR gets a transfer: the current SOA alone.
        Response::Transfer(transfer) => {
            let qtype = request.queries.queries().first().map(|q| q.query_type());
            let edns = transfer_edns(&request);
            let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
                transfer_metadata(&request),
                transfer.records().iter(),
                std::iter::empty(),
                std::iter::empty(),
                std::iter::empty(),
            );
            let rcode = encode(response, udp_size(edns.as_ref()), out);
            if let Some(qtype) = qtype {
                metrics.observe_transfer(qtype, transfer.label());
            }
            Some(Answered {
                qtype,
                rcode,
                lookup,
            })
        }
        Response::Reply(reply, edns) => {
            let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
                reply.metadata,
                reply.answer.answers.iter(),
                reply.answer.authority.iter(),
                std::iter::empty(),
                reply.answer.additional.iter(),
            );
            let rcode = encode(response, udp_size(edns.as_ref()), out);
            Some(Answered {
                qtype: reply.qtype,
                rcode,
                lookup,
            })
        }
    }
}

/// The size hickory-server's UDP path encoded within: the response's own
/// EDNS size, 512 without EDNS (`fit_udp` already made the reply fit the
/// client's).
fn udp_size(edns: Option<&Edns>) -> u16 {
    edns.map_or(512, |edns| edns.max_payload())
}

/// `response` encoded into `out` within `max` bytes; when it does not
/// encode, a bare SERVFAIL (as hickory-server). Returns the rcode sent.
fn encode<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    max: u16,
    out: &mut Vec<u8>,
) -> ResponseCode {
    out.clear();
    let id = response.metadata().id;
    let rcode = response.metadata().response_code;
    let mut encoder = BinEncoder::new(out);
    encoder.set_max_size(max);
    match response.destructive_emit(&mut encoder) {
        Ok(_) => rcode,
        Err(err) => {
            tracing::error!(%err, "answer does not encode: SERVFAIL sent");
            out.clear();
            let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
            metadata.response_code = ResponseCode::ServFail;
            let header = Header {
                metadata,
                counts: HeaderCounts::default(),
            };
            let mut encoder = BinEncoder::new(out);
            if let Err(err) = header.emit(&mut encoder) {
                tracing::error!(%err, "SERVFAIL does not encode");
            }
            ResponseCode::ServFail
        }
    }
}

/// Starts a worker thread answering on `socket` until `stopping` says so.
pub fn spawn(
    number: usize,
    socket: UdpSocket,
    worker: UdpWorker,
    stopping: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<()> {
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(RECEIVE_BUFFER);
    std::thread::Builder::new()
        .name(format!("uc-dns-udp-{number}"))
        .spawn(move || worker.run(&socket, stopping))
        .map(drop)
}

#[cfg(test)]
mod tests;
