//! The UDP packet cache, as PowerDNS's: the encoded response to a plain
//! query, keyed by everything in the query that can change the answer, so
//! a repeated question costs a hash lookup and a copy instead of a parse,
//! a lookup in the zone and an encoding.
//!
//! Only plain queries are cacheable (`CacheKey::parse`): opcode QUERY, one
//! question, no answer or authority records, at most an OPT record of
//! EDNS version 0 whose only option is a COOKIE (which uc-dns neither
//! checks nor echoes), nothing after it, and no zone transfer. Everything
//! else takes the full path, uncached.
//!
//! A miss is answered from the canonical form of the query (`canonical`:
//! the question lower-cased, no options, the payload size reduced to the
//! limit that applies), so the cached response depends on the key alone.
//! A response is then the cached one with the query's ID, question bytes
//! and spelling of the asked name written over it: the question comes
//! back in the client's case (0x20) and so do the owners of the answers
//! to it, as on the full path (names compressed against an owner read in
//! the client's case too: the same names, ignoring case).
//!
//! The cache belongs to one worker (no lock) and to one snapshot: the
//! worker empties it when a new snapshot is published, so a change is
//! answered at once, and at least hourly (RRSIGs age). It is bounded in
//! bytes: two generations, the newer filled until it holds half the
//! bound, then the older one dropped; a hit in the older generation moves
//! the entry to the newer (cheap LRU).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::time::Instant;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;

use crate::server::MAX_UDP_PAYLOAD;

/// Bytes of cached keys and responses per worker, by default.
pub const DEFAULT_BYTES: usize = 32 << 20;
/// Bookkeeping counted per entry besides its key and response (map slot,
/// boxes), so many tiny entries are bounded too.
const ENTRY_OVERHEAD: usize = 64;

const HEADER: usize = 12;
const OPT: u16 = 41;
const COOKIE: u16 = 10;

/// What identifies a cacheable query's answer, and where its question is.
#[derive(Debug, Default)]
pub struct CacheKey {
    /// Query flags, EDNS present, DO, UDP size limit, question lower-cased.
    bytes: Vec<u8>,
    /// The question section's length (name, type, class).
    question_len: usize,
    qtype: u16,
    edns: Option<(u16, bool)>,
}

impl CacheKey {
    /// Reads `packet` into `self` when it is a plain query; `false` when it
    /// is not cacheable (then `self` is left meaningless).
    pub fn parse(&mut self, packet: &[u8]) -> bool {
        self.bytes.clear();
        let word = |at: usize| {
            packet
                .get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        let (Some(flags), Some(1), Some(0), Some(0), Some(additional)) =
            (word(2), word(4), word(6), word(8), word(10))
        else {
            return false;
        };
        // A response (QR) is never answered; another opcode has its own path.
        let opcode = (flags >> 11) & 0xf;
        if flags & 0x8000 != 0 || opcode != 0 || additional > 1 {
            return false;
        }
        let Some(name_end) = name_end(packet, HEADER) else {
            return false;
        };
        let question_end = name_end + 4;
        let Some(qtype) = word(name_end) else {
            return false;
        };
        if question_end > packet.len()
            || qtype == u16::from(RecordType::AXFR)
            || qtype == u16::from(RecordType::IXFR)
        {
            return false;
        }
        let edns = if additional == 1 {
            match opt_record(packet, question_end) {
                Some(edns) => Some(edns),
                None => return false,
            }
        } else if question_end == packet.len() {
            None
        } else {
            return false;
        };
        let limit = edns.map_or(512, |(payload, _)| payload.clamp(512, MAX_UDP_PAYLOAD));
        let dnssec_ok = edns.is_some_and(|(_, dnssec_ok)| dnssec_ok);
        self.bytes.extend_from_slice(&flags.to_be_bytes());
        self.bytes.push(u8::from(edns.is_some()));
        self.bytes.push(u8::from(dnssec_ok));
        self.bytes.extend_from_slice(&limit.to_be_bytes());
        self.bytes.extend(
            packet[HEADER..question_end]
                .iter()
                .map(u8::to_ascii_lowercase),
        );
        self.question_len = question_end - HEADER;
        self.qtype = qtype;
        self.edns = edns.map(|_| (limit, dnssec_ok));
        true
    }

    pub fn qtype(&self) -> RecordType {
        RecordType::from(self.qtype)
    }

    fn lowered_question(&self) -> &[u8] {
        &self.bytes[self.bytes.len() - self.question_len..]
    }

    /// The query this key stands for: ID 0, the same flags, the question
    /// lower-cased, an OPT record without options when EDNS was used.
    pub fn canonical(&self) -> Vec<u8> {
        let mut query = Vec::with_capacity(HEADER + self.question_len + 11);
        query.extend_from_slice(&[0, 0, self.bytes[0], self.bytes[1], 0, 1, 0, 0, 0, 0, 0]);
        query.push(u8::from(self.edns.is_some()));
        query.extend_from_slice(self.lowered_question());
        if let Some((limit, dnssec_ok)) = self.edns {
            query.push(0);
            query.extend_from_slice(&OPT.to_be_bytes());
            query.extend_from_slice(&limit.to_be_bytes());
            let do_bit = if dnssec_ok { 0x80 } else { 0 };
            query.extend_from_slice(&[0, 0, do_bit, 0, 0, 0]);
        }
        query
    }
}

/// Where the uncompressed name at `at` ends; `None` for a pointer, a
/// reserved label type or a name past the packet or longer than 255.
fn name_end(packet: &[u8], mut at: usize) -> Option<usize> {
    let start = at;
    loop {
        let len = usize::from(*packet.get(at)?);
        if len == 0 {
            return (at + 1 - start <= 255).then_some(at + 1);
        }
        if len > 63 {
            return None;
        }
        at += 1 + len;
    }
}

/// The OPT record that must end the packet at `at`: (payload size, DO);
/// `None` unless it is exactly that, version 0, with no option but COOKIE.
fn opt_record(packet: &[u8], at: usize) -> Option<(u16, bool)> {
    let fixed = packet.get(at..at + 11)?;
    let word = |i: usize| u16::from_be_bytes([fixed[i], fixed[i + 1]]);
    let (owner, rtype, payload, version, flags, rdlen) =
        (fixed[0], word(1), word(3), fixed[6], word(7), word(9));
    let options = packet.get(at + 11..)?;
    if owner != 0 || rtype != OPT || version != 0 || options.len() != usize::from(rdlen) {
        return None;
    }
    let mut rest = options;
    while !rest.is_empty() {
        let code = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
        let len = usize::from(u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]));
        if code != COOKIE || rest.len() < 4 + len {
            return None;
        }
        rest = &rest[4 + len..];
    }
    Some((payload, flags & 0x8000 != 0))
}

/// Literal spellings of the asked name recorded per answer at most (the
/// first answer's owner; later ones point at it): more is not cached.
const MAX_OWNERS: usize = 4;

/// A cached response and what metrics count for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key, then the response: one allocation, so a hit reads one
    /// place besides the map.
    stored: Box<[u8]>,
    key_len: usize,
    /// Where the answer section spells out the asked name (the owner of
    /// records answering it, in the asker's spelling on the full path).
    owners: [u16; MAX_OWNERS],
    owner_count: usize,
    pub rcode: ResponseCode,
}

impl Entry {
    /// `response` (to the key's canonical query) if it can be patched for
    /// any spelling of the question: it starts with that question and its
    /// answer section parses.
    pub fn new(key: &CacheKey, response: &[u8], rcode: ResponseCode) -> Option<Entry> {
        let question = key.lowered_question();
        if response.get(HEADER..HEADER + question.len())? != question {
            return None;
        }
        let name = &question[..question.len() - 4];
        let answers = u16::from_be_bytes([*response.get(6)?, *response.get(7)?]);
        let mut owners = [0; MAX_OWNERS];
        let mut owner_count = 0;
        let mut at = HEADER + question.len();
        for _ in 0..answers {
            if response.get(at..at + name.len()) == Some(name) {
                *owners.get_mut(owner_count)? = u16::try_from(at).ok()?;
                owner_count += 1;
            }
            at = skip_name(response, at)? + 8;
            let rdlen = response.get(at..at + 2)?;
            at += 2 + usize::from(u16::from_be_bytes([rdlen[0], rdlen[1]]));
        }
        if at > response.len() {
            return None;
        }
        let mut stored = Vec::with_capacity(key.bytes.len() + response.len());
        stored.extend_from_slice(&key.bytes);
        stored.extend_from_slice(response);
        Some(Entry {
            stored: stored.into(),
            key_len: key.bytes.len(),
            owners,
            owner_count,
            rcode,
        })
    }

    fn key(&self) -> &[u8] {
        &self.stored[..self.key_len]
    }

    /// The response to `query` (whose key this entry is under) in `out`:
    /// the query's ID and its spelling of the name over the cached bytes.
    pub fn write(&self, query: &[u8], key: &CacheKey, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.stored[self.key_len..]);
        out[..2].copy_from_slice(&query[..2]);
        let question = &query[HEADER..HEADER + key.question_len];
        out[HEADER..HEADER + question.len()].copy_from_slice(question);
        let name = &question[..question.len() - 4];
        for owner in self.owners[..self.owner_count]
            .iter()
            .map(|at| usize::from(*at))
        {
            out[owner..owner + name.len()].copy_from_slice(name);
        }
    }

    fn bytes(&self) -> usize {
        self.stored.len() + ENTRY_OVERHEAD
    }
}

/// Where the possibly compressed name at `at` ends.
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *message.get(at)?;
        match len {
            0 => return Some(at + 1),
            1..=63 => at += 1 + usize::from(len),
            // A pointer ends the name.
            _ if len & 0xc0 == 0xc0 => return Some(at + 2),
            _ => return None,
        }
    }
}

/// The maps are keyed by the key's 64-bit SipHash (random per cache), so
/// a probe compares integers; the entry holds the key to confirm a hit.
type ByHash = HashMap<u64, Entry, BuildHasherDefault<AlreadyHashed>>;

/// Passes a `u64` that already is a hash through.
#[derive(Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

/// One worker's cache for one snapshot, bounded in bytes.
#[derive(Debug)]
pub struct PacketCache {
    hasher: RandomState,
    newer: ByHash,
    older: ByHash,
    newer_bytes: usize,
    /// What `newer` may hold before it becomes `older`: half the bound.
    generation_bytes: usize,
    since: Instant,
}

impl PacketCache {
    /// A cache holding at most `max_bytes` of keys and responses.
    pub fn new(max_bytes: usize) -> PacketCache {
        PacketCache {
            hasher: RandomState::new(),
            newer: ByHash::default(),
            older: ByHash::default(),
            newer_bytes: 0,
            generation_bytes: max_bytes / 2,
            since: Instant::now(),
        }
    }

    /// Empties the cache, as filled from `now` on.
    pub fn clear(&mut self, now: Instant) {
        self.newer.clear();
        self.older.clear();
        self.newer_bytes = 0;
        self.since = now;
    }

    /// When the cache was last emptied.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// On a hit, the response to `query` (under `key`) in `out` and its
    /// rcode.
    pub fn answer(
        &mut self,
        key: &CacheKey,
        query: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<ResponseCode> {
        let hash = self.hasher.hash_one(&key.bytes);
        if let Some(entry) = self.newer.get(&hash).filter(|e| e.key() == key.bytes) {
            entry.write(query, key, out);
            return Some(entry.rcode);
        }
        let entry = self.older.remove(&hash)?;
        if entry.key() != key.bytes {
            return None;
        }
        entry.write(query, key, out);
        let rcode = entry.rcode;
        self.put(hash, entry);
        Some(rcode)
    }

    pub fn insert(&mut self, key: &CacheKey, entry: Entry) {
        let hash = self.hasher.hash_one(&key.bytes);
        self.put(hash, entry);
    }

    fn put(&mut self, hash: u64, entry: Entry) {
        let bytes = entry.bytes();
        if bytes > self.generation_bytes {
            return;
        }
        if self.newer_bytes + bytes > self.generation_bytes {
            self.older = std::mem::take(&mut self.newer);
            self.newer_bytes = 0;
        }
        self.newer_bytes += bytes;
        self.newer.insert(hash, entry);
    }

    /// Entries held, both generations.
    pub fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }

    /// Bytes held by both generations, as counted against the bound.
    pub fn bytes(&self) -> usize {
        let held = |map: &ByHash| map.values().map(Entry::bytes).sum::<usize>();
        held(&self.newer) + held(&self.older)
    }
}
