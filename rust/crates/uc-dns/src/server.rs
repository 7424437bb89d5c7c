//! The DNS side. UDP is read by uc-dns' own workers (`udp`, one thread per
//! SO_REUSEPORT socket, with a `packet_cache`); TCP by hickory-server's
//! `Server`, whose `Handler` answers each message. Both go through
//! `respond`: `reply` is the message-level part (opcode, question count,
//! EDNS version) as a pure function; `answer` does the question,
//! `transfer` AXFR and IXFR.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::opt::EdnsOption;
use hickory_server::proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{
    MessageRequest, MessageResponse, MessageResponseBuilder, Queries,
};
use hickory_server::Server;
use tracing::Instrument;

use crate::answer::{answer_dnssec, Answer, Question};
use crate::metrics::Metrics;
use crate::snapshot::{Published, Snapshot};
use crate::transfer::{messages, transfer, Transfer, MESSAGE_BYTES};

/// The largest UDP answer offered to EDNS clients (DNS Flag Day 2020, Knot's default).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// A TCP connection idle this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);

/// The response to one message, before encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub metadata: Metadata,
    pub answer: Answer,
    /// The query type asked, for metrics (`None` without exactly one question).
    pub qtype: Option<RecordType>,
    /// The name is in no served zone (EDE 20 when the client speaks EDNS).
    pub outside_zones: bool,
}

/// Answers `request` from `snapshot`.
pub fn reply(snapshot: &Snapshot, request: &MessageRequest) -> Reply {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    let queries = request.queries.queries();
    let qtype = match queries {
        [only] => Some(only.query_type()),
        _ => None,
    };
    let error = |rcode: ResponseCode| {
        let mut metadata = metadata;
        metadata.response_code = rcode;
        Reply {
            metadata,
            answer: Answer::error(rcode),
            qtype,
            outside_zones: false,
        }
    };
    match request.metadata.op_code {
        OpCode::Query => {}
        // Not a secondary, and no updates allowed: Knot's answer too.
        OpCode::Notify | OpCode::Update => return error(ResponseCode::NotAuth),
        _ => return error(ResponseCode::NotImp),
    }
    let [query] = queries else {
        return error(ResponseCode::FormErr);
    };
    if request.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
        return error(ResponseCode::BADVERS);
    }
    let question = Question {
        name: query.name().clone(),
        original: query.original().name().clone(),
        qtype: query.query_type(),
        qclass: query.query_class(),
    };
    // The DO bit: a signed zone's answer then carries RRSIGs and NSECs.
    let dnssec_ok = request
        .edns
        .as_ref()
        .is_some_and(|edns| edns.flags().dnssec_ok);
    let answer = answer_dnssec(snapshot, &question, dnssec_ok);
    metadata.authoritative = answer.authoritative;
    metadata.response_code = answer.rcode;
    let outside_zones =
        question.qclass == DNSClass::IN && snapshot.find_zone(&question.name).is_none();
    Reply {
        metadata,
        answer,
        qtype,
        outside_zones,
    }
}

/// Makes `reply` fit a UDP answer of the size the client allows, as Knot
/// does: additional records go first (unless they are a referral's glue);
/// if it still does not fit, TC is set and every section left empty, so the
/// client asks again over TCP. (hickory's encoder would send a cut-off
/// RRset, with part of a record left at the end.)
pub fn fit_udp(request: &MessageRequest, reply: &mut Reply, edns: Option<&Edns>) {
    let limit = udp_limit(request);
    if size_bound(request, reply).is_some_and(|bound| bound <= usize::from(limit)) {
        return;
    }
    if encodes_within(request, reply, edns, limit) {
        return;
    }
    let referral = !reply.metadata.authoritative && !reply.answer.authority.is_empty();
    if !reply.answer.additional.is_empty() && !referral {
        let additional = std::mem::take(&mut reply.answer.additional);
        if encodes_within(request, reply, edns, limit) {
            return;
        }
        reply.answer.additional = additional;
    }
    reply.metadata.truncation = true;
    reply.answer.answers.clear();
    reply.answer.authority.clear();
    reply.answer.additional.clear();
}

/// An upper bound of the encoded reply's size, without compression; `None`
/// when a record's data has no cheap bound (then it is encoded to see).
fn size_bound(request: &MessageRequest, reply: &Reply) -> Option<usize> {
    const OPT: usize = 11;
    let name = |name: &hickory_server::proto::rr::Name| name.len() + 1;
    let question: usize = request
        .queries
        .queries()
        .iter()
        .map(|q| name(q.name()) + 4)
        .sum();
    let mut total = 12 + question + OPT;
    let answer = &reply.answer;
    for record in answer
        .answers
        .iter()
        .chain(&answer.authority)
        .chain(&answer.additional)
    {
        let data = match &record.data {
            RData::A(_) => 4,
            RData::AAAA(_) => 16,
            RData::CNAME(target) => name(&target.0),
            RData::NS(target) => name(&target.0),
            RData::PTR(target) => name(&target.0),
            RData::MX(mx) => 2 + name(&mx.exchange),
            RData::SRV(srv) => 6 + name(&srv.target),
            RData::SOA(soa) => name(&soa.mname) + name(&soa.rname) + 20,
            _ => return None,
        };
        total += name(&record.name) + 10 + data;
    }
    Some(total)
}

fn encodes_within(
    request: &MessageRequest,
    reply: &Reply,
    edns: Option<&Edns>,
    limit: u16,
) -> bool {
    let response = reply_message(&request.queries, edns, reply);
    let mut bytes = Vec::with_capacity(usize::from(limit));
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(limit);
    matches!(response.destructive_emit(&mut encoder), Ok(info) if !info.truncation)
}

/// The largest UDP answer this client takes: 512 bytes without EDNS, else
/// what it offers, at most `MAX_UDP_PAYLOAD`.
pub fn udp_limit(request: &MessageRequest) -> u16 {
    request
        .edns
        .as_ref()
        .map_or(512, |asked| asked.max_payload().clamp(512, MAX_UDP_PAYLOAD))
}

/// EDNS option code of Extended DNS Errors (RFC 8914).
const EXTENDED_ERROR: u16 = 15;
/// EDE "Not Authoritative": the REFUSED of a name outside the served zones.
const NOT_AUTHORITATIVE: u16 = 20;

/// The OPT record of the response: present when the query had one, with
/// the DO bit echoed (RFC 3225) and, for a name outside the served zones,
/// why it is refused (as Knot adds it).
pub fn response_edns(request: &MessageRequest, reply: &Reply) -> Option<Edns> {
    edns_for(request, reply.outside_zones)
}

/// The OPT record of a transfer's messages.
pub fn transfer_edns(request: &MessageRequest) -> Option<Edns> {
    edns_for(request, false)
}

fn edns_for(request: &MessageRequest, outside_zones: bool) -> Option<Edns> {
    request.edns.as_ref().map(|asked| {
        let mut edns = Edns::new();
        // Our own size (RFC 6891 §6.2.3); what the client takes is `udp_limit`.
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        edns.set_version(0);
        edns.set_dnssec_ok(asked.flags().dnssec_ok);
        if outside_zones {
            let code = NOT_AUTHORITATIVE.to_be_bytes().to_vec();
            edns.options_mut()
                .insert(EdnsOption::Unknown(EXTENDED_ERROR, code));
        }
        edns
    })
}

/// What a request gets, before encoding.
#[derive(Debug)]
pub enum Response {
    /// A zone transfer to one of the zone's secondaries.
    Transfer(Transfer),
    /// Anything else, with the response's OPT record; over UDP already
    /// made to fit the client's size.
    Reply(Reply, Option<Edns>),
}

/// The response to `request` from `snapshot`; refused transfers are
/// logged (over TCP) and counted here.
pub fn respond(snapshot: &Snapshot, request: &Request, metrics: &Metrics) -> Response {
    let asked = transfer(snapshot, request, request.src().ip(), request.protocol());
    if let (Some(answer), [query]) = (asked, request.queries.queries()) {
        if answer != Transfer::Refused {
            return Response::Transfer(answer);
        }
        // Over UDP only counted: spoofable, so no log line per packet.
        if request.protocol() != Protocol::Udp {
            tracing::info!(client = %request.src(), zone = %query.name(), "zone transfer refused: the client is not a listed secondary");
        }
        metrics.observe_transfer(query.query_type(), "refused");
    }
    let mut reply = reply(snapshot, request);
    let edns = response_edns(request, &reply);
    if request.protocol() == Protocol::Udp {
        fit_udp(request, &mut reply, edns.as_ref());
    }
    Response::Reply(reply, edns)
}

/// `reply` as the response to `queries`, with `edns`, to encode or send.
pub fn reply_message<'q, 'a>(
    queries: &'q Queries,
    edns: Option<&'q Edns>,
    reply: &'a Reply,
) -> MessageResponse<
    'q,
    'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
> {
    MessageResponseBuilder::new(queries, edns).build(
        reply.metadata,
        reply.answer.answers.iter(),
        reply.answer.authority.iter(),
        std::iter::empty(),
        reply.answer.additional.iter(),
    )
}

/// The header of every message answering a transfer request.
pub fn transfer_metadata(request: &MessageRequest) -> Metadata {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.authoritative = true;
    metadata.response_code = ResponseCode::NoError;
    metadata
}

pub struct Handler {
    pub published: Arc<Published>,
    pub metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let span = tracing::trace_span!("query", id = request.metadata.id, client = %request.src());
        async move {
            let started = Instant::now();
            let snapshot = self.published.load();
            let (reply, edns) = match respond(&snapshot, request, &self.metrics) {
                Response::Transfer(answer) => {
                    return self
                        .send_transfer(request, &answer, response_handle, started)
                        .await
                }
                Response::Reply(reply, edns) => (reply, edns),
            };
            let response = reply_message(&request.queries, edns.as_ref(), &reply);
            let info = match response_handle.send_response(response).await {
                Ok(info) => info,
                Err(err) => {
                    tracing::debug!(%err, "answer not sent");
                    ResponseInfo::from(Header {
                        metadata: reply.metadata,
                        counts: HeaderCounts::default(),
                    })
                }
            };
            self.metrics.observe_query(
                reply.qtype,
                reply.metadata.response_code,
                started.elapsed(),
            );
            tracing::trace!(rcode = %reply.metadata.response_code, "answered");
            info
        }
        .instrument(span)
        .await
    }
}

impl Handler {
    /// Sends `answer` to a transfer request, in as many messages as it
    /// takes (each under 64 KiB), every one with AA and the question.
    async fn send_transfer<R: ResponseHandler>(
        &self,
        request: &Request,
        answer: &Transfer,
        mut response_handle: R,
        started: Instant,
    ) -> ResponseInfo {
        // A transfer has exactly one question (`transfer`).
        let Some(query) = request.queries.queries().first() else {
            return ResponseInfo::from(Header {
                metadata: request.metadata,
                counts: HeaderCounts::default(),
            });
        };
        let qtype = query.query_type();
        let metadata = transfer_metadata(request);
        let edns = transfer_edns(request);
        let mut info = ResponseInfo::from(Header {
            metadata,
            counts: HeaderCounts::default(),
        });
        let records = answer.records();
        for chunk in messages(records, MESSAGE_BYTES) {
            let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
                metadata,
                chunk.iter(),
                std::iter::empty(),
                std::iter::empty(),
                std::iter::empty(),
            );
            match response_handle.send_response(response).await {
                Ok(sent) => info = sent,
                Err(err) => {
                    tracing::warn!(%err, client = %request.src(), zone = %query.name(), "zone transfer cut off");
                    break;
                }
            }
        }
        tracing::info!(client = %request.src(), zone = %query.name(), %qtype, answer = answer.label(), records = records.len(), "zone transfer");
        self.metrics.observe_transfer(qtype, answer.label());
        self.metrics
            .observe_query(Some(qtype), ResponseCode::NoError, started.elapsed());
        info
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address} ({protocol}): {source} (is the port in use, or below 1024 without CAP_NET_BIND_SERVICE?)")]
pub struct BindError {
    pub address: SocketAddr,
    pub protocol: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// A DNS server on every address of `listen`: `udp_sockets` UDP sockets
/// per address sharing the port (SO_REUSEPORT, so the kernel spreads
/// queries over workers), each answered by its own thread, and one TCP
/// listener. Port 0 picks one port for all. Returns the server (cancelling
/// its shutdown token stops the UDP workers too) and the addresses bound.
pub fn serve(
    handler: Handler,
    listen: &[SocketAddr],
    udp_sockets: usize,
) -> Result<(Server<Handler>, Vec<SocketAddr>), BindError> {
    let (published, metrics) = (handler.published.clone(), handler.metrics.clone());
    let mut server = Server::new(handler);
    let mut bound = Vec::new();
    let mut sockets = Vec::new();
    for requested in listen {
        let first = udp_socket(*requested)?;
        let address = first.local_addr().map_err(|source| BindError {
            address: *requested,
            protocol: "udp",
            source,
        })?;
        sockets.push((address, first));
        for _ in 1..udp_sockets.max(1) {
            sockets.push((address, udp_socket(address)?));
        }
        let tcp = tcp_listener(address)?;
        server.register_listener(tcp, TCP_IDLE, 32);
        bound.push(address);
    }
    for (number, (address, socket)) in sockets.into_iter().enumerate() {
        let worker = UdpWorker::new(published.clone(), metrics.clone(), DEFAULT_BYTES);
        let token = server.shutdown_token().clone();
        udp::spawn(number, socket, worker, move || token.is_cancelled()).map_err(|source| {
            BindError {
                address,
                protocol: "udp",
                source,
            }
        })?;
    }
    Ok((server, bound))
}

/// A blocking UDP socket on `address` that shares it (SO_REUSEPORT).
fn udp_socket(address: SocketAddr) -> Result<std::net::UdpSocket, BindError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let error = |source| BindError {
        address,
        protocol: "udp",
        source,
    };
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(error)?;
    socket.set_reuse_port(true).map_err(error)?;
    if address.is_ipv6() {
        socket.set_only_v6(true).map_err(error)?;
    }
    socket.bind(&address.into()).map_err(error)?;
    Ok(socket.into())
}

fn tcp_listener(address: SocketAddr) -> Result<tokio::net::TcpListener, BindError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let error = |source| BindError {
        address,
        protocol: "tcp",
        source,
    };
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(error)?;
    socket.set_reuse_address(true).map_err(error)?;
    if address.is_ipv6() {
        socket.set_only_v6(true).map_err(error)?;
    }
    socket.set_nonblocking(true).map_err(error)?;
    socket.bind(&address.into()).map_err(error)?;
    socket.listen(1024).map_err(error)?;
    tokio::net::TcpListener::from_std(socket.into()).map_err(error)
}

mod packet_cache;
mod udp;

pub use packet_cache::DEFAULT_BYTES;
pub use udp::{Answered, UdpWorker};

#[cfg(test)]
mod tests;
