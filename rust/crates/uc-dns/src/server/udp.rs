//! uc-dns' own UDP path: one thread per SO_REUSEPORT socket reads the
//! queued datagrams (recvmmsg), answers them and sends the answers
//! (sendmmsg), with no task, channel or wake-up between (hickory-server's `Server` spawned a task per UDP query
//! and handed the answer back to the socket's task: most of uc-dns' time
//! at full speed went to that, see docs/dns-performance.md). Plain queries
//! are answered from the worker's packet cache; the rest, and every miss,
//! go through the same `respond` and encoding as before. TCP, zone
//! transfers over TCP and NOTIFY stay on hickory-server's path.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
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
use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};

use super::packet_cache::{CacheKey, Entry, PacketCache};
use super::{reply_message, respond, transfer_edns, transfer_metadata, Response};
use crate::metrics::{CacheLookup, Metrics, QueryCounters};
use crate::snapshot::{Published, Snapshot};

/// How long a worker waits for a datagram before it looks whether the
/// server is shutting down.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// A worker's cache is emptied at least this often, even when no new
/// snapshot came: signed answers carry RRSIGs the signer renews when half
/// their 14 days are gone, and a cached copy must not outlive that by
/// much.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// Datagrams read (and answers sent) per system call at most.
const BATCH: usize = 32;
/// Receive buffer asked for each socket: room for bursts while the worker
/// is not scheduled (NSD's default; the kernel caps it at
/// net.core.rmem_max and doubles it).
const RECEIVE_BUFFER: usize = 1 << 20;

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

    /// Answers datagrams on `socket` until `stopping` says so: reads what
    /// is queued (up to `BATCH`, waiting for the first) with one recvmmsg,
    /// answers each, and sends the answers with one sendmmsg (Knot's and
    /// NSD's loop). Below saturation a batch is one datagram.
    pub fn run(mut self, socket: &UdpSocket, stopping: impl Fn() -> bool) {
        if let Err(err) = socket.set_read_timeout(Some(STOP_CHECK)) {
            tracing::warn!(%err, "UDP socket without a read timeout: shutdown waits for a datagram");
        }
        let fd = socket.as_raw_fd();
        let mut buffers = vec![vec![0; usize::from(u16::MAX)]; BATCH];
        let mut answers: Vec<Vec<u8>> = vec![Vec::new(); BATCH];
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut sending = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut received: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
        let mut clients: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
        let mut counted: Vec<Answered> = Vec::with_capacity(BATCH);
        while !stopping() {
            received.clear();
            {
                let mut slices: Vec<[IoSliceMut; 1]> = buffers
                    .iter_mut()
                    .map(|buffer| [IoSliceMut::new(buffer)])
                    .collect();
                match recvmmsg(
                    fd,
                    &mut headers,
                    slices.iter_mut(),
                    MsgFlags::MSG_WAITFORONE,
                    None,
                ) {
                    Ok(messages) => received.extend(messages.map(|m| (m.bytes, m.address))),
                    // A timeout (to look at `stopping`), or an ICMP error of an earlier send.
                    Err(err) => {
                        if !matches!(err, Errno::EAGAIN | Errno::EINTR) {
                            tracing::debug!(%err, "UDP receive failed");
                        }
                        continue;
                    }
                }
            }
            let started = Instant::now();
            self.refresh(started);
            clients.clear();
            counted.clear();
            for (at, (len, address)) in received.iter().enumerate() {
                let Some(client) = address.as_ref().and_then(socket_address) else {
                    continue;
                };
                // Port 0 cannot be answered (and is spoofed), as hickory-server.
                if client.port() == 0 {
                    continue;
                }
                let packet = &buffers[at][..(*len).min(buffers[at].len())];
                if let Some(answered) = self.answer_from_snapshot(packet, client) {
                    std::mem::swap(&mut self.out, &mut answers[clients.len()]);
                    clients.push(*address);
                    counted.push(answered);
                }
            }
            send_all(fd, &mut sending, &answers[..clients.len()], &clients);
            let took = started.elapsed();
            for answered in &counted {
                self.counters.observe(answered.qtype, answered.rcode, took);
                self.counters.observe_cache(answered.lookup);
            }
        }
    }

    /// Takes the published snapshot if it is new, emptying the cache,
    /// and empties a cache filled `MAX_AGE` ago or earlier. Once per
    /// batch: a batch was received before it is looked at.
    fn refresh(&mut self, now: Instant) {
        let current = self.published.load();
        if !Arc::ptr_eq(&current, &self.snapshot) {
            self.cache.clear(now);
            self.snapshot = current;
        } else if now.saturating_duration_since(self.cache.since()) >= MAX_AGE {
            self.cache.clear(now);
        }
    }

    /// The answer to `packet` from `client` in `self.out` from the
    /// published snapshot; `None` when it gets none (shorter than a
    /// header, or a response).
    pub fn answer(&mut self, packet: &[u8], client: SocketAddr) -> Option<Answered> {
        self.answer_at(packet, client, Instant::now())
    }

    /// `answer` as at `now`.
    pub fn answer_at(
        &mut self,
        packet: &[u8],
        client: SocketAddr,
        now: Instant,
    ) -> Option<Answered> {
        self.refresh(now);
        self.answer_from_snapshot(packet, client)
    }

    fn answer_from_snapshot(&mut self, packet: &[u8], client: SocketAddr) -> Option<Answered> {
        if self.key.parse(packet) {
            let qtype = Some(self.key.qtype());
            if let Some(rcode) = self.cache.answer(&self.key, packet, &mut self.out) {
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
            let response = reply_message(&request.queries, edns.as_ref(), &reply);
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

/// Sends `answers[i]` to `clients[i]`, in as few sendmmsg calls as the
/// kernel allows; an answer that cannot be sent is skipped.
fn send_all(
    fd: RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    answers: &[Vec<u8>],
    clients: &[Option<SockaddrStorage>],
) {
    let mut from = 0;
    while from < answers.len() {
        let slices: Vec<[IoSlice; 1]> = answers[from..]
            .iter()
            .map(|answer| [IoSlice::new(answer)])
            .collect();
        let controls: [ControlMessage; 0] = [];
        match sendmmsg(
            fd,
            &mut *headers,
            &slices,
            &clients[from..],
            controls,
            MsgFlags::empty(),
        ) {
            Ok(sent) => from += sent.count().max(1),
            Err(Errno::EINTR) => {}
            Err(err) => {
                tracing::debug!(%err, "answer not sent");
                from += 1;
            }
        }
    }
}

fn socket_address(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
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
