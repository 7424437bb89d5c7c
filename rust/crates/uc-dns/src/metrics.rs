//! `/metrics` (OpenMetrics, names `uc_dns_…`): queries by type and response
//! code, answer latency, packet cache hits, each zone's serial and size,
//! zone transfers and NOTIFYs, and how current the snapshot is against the
//! store.
//!
//! Queries are counted in plain atomics, one set per UDP worker (written by
//! that worker alone) and one shared by the TCP path, summed when
//! `/metrics` is read: no lock and no label lookup per query.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;
use uc_daemon::metrics::prometheus_client::collector::Collector;
use uc_daemon::metrics::prometheus_client::encoding::{
    DescriptorEncoder, EncodeMetric, NoLabelSet,
};
use uc_daemon::metrics::prometheus_client::metrics::counter::ConstCounter;
use uc_daemon::metrics::prometheus_client::metrics::MetricType;
use uc_daemon::metrics::{Counter, Family, Gauge, Registry, LATENCY_SECONDS};

type ZoneLabels = [(&'static str, String); 1];
type TransferLabels = [(&'static str, &'static str); 2];
type NotifyLabels = [(&'static str, String); 2];

pub struct Metrics {
    registry: Registry,
    queries: Arc<QueryStats>,
    zone_serial: Family<ZoneLabels, Gauge>,
    zone_records: Family<ZoneLabels, Gauge>,
    zone_signed: Family<ZoneLabels, Gauge>,
    signatures_kept: Gauge,
    transfers: Family<TransferLabels, Counter>,
    notifies: Family<NotifyLabels, Counter>,
    pub notify_sent: Counter,
    pub reloads: Counter,
    pub snapshot_revision: Gauge,
    pub store_revision: Gauge,
    pub store_lag: Gauge,
    pub store_connected: Gauge,
    pub last_sync_age: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let metrics = Metrics {
            registry: uc_daemon::metrics::registry("uc_dns"),
            queries: Arc::default(),
            zone_serial: Family::default(),
            zone_records: Family::default(),
            zone_signed: Family::default(),
            signatures_kept: Gauge::default(),
            transfers: Family::default(),
            notifies: Family::default(),
            notify_sent: Counter::default(),
            reloads: Counter::default(),
            snapshot_revision: Gauge::default(),
            store_revision: Gauge::default(),
            store_lag: Gauge::default(),
            store_connected: Gauge::default(),
            last_sync_age: Gauge::default(),
        };
        metrics.registered()
    }

    fn registered(mut self) -> Metrics {
        let registry = &mut self.registry;
        registry.register_collector(Box::new(self.queries.clone()));
        registry.register(
            "zone_serial",
            "SOA serial of each served zone",
            self.zone_serial.clone(),
        );
        registry.register(
            "zone_records",
            "Records served in each zone (service records as resolved now)",
            self.zone_records.clone(),
        );
        registry.register(
            "transfers",
            "Zone transfer requests of served zones, by type (AXFR, IXFR) and answer (full, incremental, current, refused)",
            self.transfers.clone(),
        );
        registry.register(
            "notifies",
            "NOTIFY to one secondary of a zone, by outcome (acknowledged, refused, unanswered after every retry, unsent)",
            self.notifies.clone(),
        );
        registry.register(
            "notify_messages_sent",
            "NOTIFY datagrams sent, retries included",
            self.notify_sent.clone(),
        );
        registry.register(
            "reloads",
            "Snapshots built from the store",
            self.reloads.clone(),
        );
        registry.register(
            "snapshot_revision",
            "Store revision the served snapshot was built from",
            self.snapshot_revision.clone(),
        );
        registry.register(
            "store_revision",
            "Store revision seen by the last liveness probe",
            self.store_revision.clone(),
        );
        registry.register(
            "store_lag_revisions",
            "Store revision minus the served snapshot's (writes not yet applied)",
            self.store_lag.clone(),
        );
        registry.register(
            "store_connected",
            "1 while the watch on the store is up",
            self.store_connected.clone(),
        );
        registry.register(
            "zone_signed",
            "Zones declared signed: 1 while served signed, 0 while their key cannot be read (served unsigned)",
            self.zone_signed.clone(),
        );
        registry.register(
            "dnssec_signatures_kept",
            "RRSIGs kept for the current versions of the signed zones",
            self.signatures_kept.clone(),
        );
        registry.register(
            "store_last_sync_age_seconds",
            "Seconds since the store last answered (watch event or probe)",
            self.last_sync_age.clone(),
        );
        self
    }

    /// Counts a query answered outside the UDP workers (TCP, transfers).
    pub fn observe_query(&self, qtype: Option<RecordType>, rcode: ResponseCode, took: Duration) {
        self.queries.shared.observe(qtype, rcode, took);
    }

    /// A new set of query counters, for one UDP worker to write alone.
    pub fn worker_counters(&self) -> Arc<QueryCounters> {
        let counters = Arc::new(QueryCounters::default());
        let mut workers = match self.queries.workers.lock() {
            Ok(workers) => workers,
            Err(poisoned) => poisoned.into_inner(),
        };
        workers.push(counters.clone());
        counters
    }

    pub fn observe_transfer(&self, qtype: RecordType, answer: &'static str) {
        let labels = [("type", qtype_label(Some(qtype))), ("answer", answer)];
        self.transfers.get_or_create(&labels).inc();
    }

    pub fn observe_notify(&self, zone: &str, result: &'static str) {
        let labels = [("zone", zone.to_owned()), ("result", result.to_owned())];
        self.notifies.get_or_create(&labels).inc();
    }

    /// Replaces the per-zone gauges with `zones` (apex, serial, records).
    pub fn set_zones(&self, zones: &[(String, u32, usize)]) {
        self.zone_serial.clear();
        self.zone_records.clear();
        for (apex, serial, records) in zones {
            let labels = [("zone", apex.clone())];
            self.zone_serial
                .get_or_create(&labels)
                .set(i64::from(*serial));
            self.zone_records
                .get_or_create(&labels)
                .set(i64::try_from(*records).unwrap_or(i64::MAX));
        }
    }

    /// Replaces the DNSSEC gauges: each zone declared signed and whether
    /// it is, and the RRSIGs kept.
    pub fn set_dnssec(&self, zones: &[(String, bool)], signatures_kept: usize) {
        self.zone_signed.clear();
        for (apex, signed) in zones {
            self.zone_signed
                .get_or_create(&[("zone", apex.clone())])
                .set(i64::from(*signed));
        }
        self.signatures_kept
            .set(i64::try_from(signatures_kept).unwrap_or(i64::MAX));
    }

    pub fn render(&self) -> String {
        uc_daemon::metrics::render(&self.registry)
    }
}

/// The query type labels: a bounded set, so random packets cannot grow
/// the metric; the last is every other type.
const QTYPES: [&str; 19] = [
    "none", "A", "AAAA", "ANY", "AXFR", "CAA", "CNAME", "DS", "DNSKEY", "HTTPS", "IXFR", "MX",
    "NS", "PTR", "SOA", "SRV", "SVCB", "TXT", "other",
];

fn qtype_index(qtype: Option<RecordType>) -> usize {
    match qtype {
        None => 0,
        Some(RecordType::A) => 1,
        Some(RecordType::AAAA) => 2,
        Some(RecordType::ANY) => 3,
        Some(RecordType::AXFR) => 4,
        Some(RecordType::CAA) => 5,
        Some(RecordType::CNAME) => 6,
        Some(RecordType::DS) => 7,
        Some(RecordType::DNSKEY) => 8,
        Some(RecordType::HTTPS) => 9,
        Some(RecordType::IXFR) => 10,
        Some(RecordType::MX) => 11,
        Some(RecordType::NS) => 12,
        Some(RecordType::PTR) => 13,
        Some(RecordType::SOA) => 14,
        Some(RecordType::SRV) => 15,
        Some(RecordType::SVCB) => 16,
        Some(RecordType::TXT) => 17,
        Some(_) => 18,
    }
}

fn qtype_label(qtype: Option<RecordType>) -> &'static str {
    QTYPES[qtype_index(qtype)]
}

const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other",
];

fn rcode_index(rcode: ResponseCode) -> usize {
    match rcode {
        ResponseCode::NoError => 0,
        ResponseCode::FormErr => 1,
        ResponseCode::ServFail => 2,
        ResponseCode::NXDomain => 3,
        ResponseCode::NotImp => 4,
        ResponseCode::Refused => 5,
        ResponseCode::BADVERS => 6,
        _ => 7,
    }
}

/// How a UDP query met the packet cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheLookup {
    /// Answered from the cache.
    Hit,
    /// Cacheable, answered and then cached.
    Miss,
    /// Not cacheable (unusual packet): answered by the full path.
    Bypass,
}

const LOOKUPS: [&str; 3] = ["hit", "miss", "bypass"];

/// Query counts and latencies of one writer.
#[derive(Debug)]
pub struct QueryCounters {
    queries: [[AtomicU64; RCODES.len()]; QTYPES.len()],
    /// Per `LATENCY_SECONDS` bucket, then one for larger (not cumulative).
    latency: [AtomicU64; LATENCY_BUCKETS],
    latency_nanos: AtomicU64,
    cache: [AtomicU64; LOOKUPS.len()],
}

const LATENCY_BUCKETS: usize = 16;

impl Default for QueryCounters {
    fn default() -> QueryCounters {
        QueryCounters {
            queries: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_nanos: AtomicU64::new(0),
            cache: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl QueryCounters {
    pub fn observe(&self, qtype: Option<RecordType>, rcode: ResponseCode, took: Duration) {
        self.queries[qtype_index(qtype)][rcode_index(rcode)].fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_SECONDS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn observe_cache(&self, lookup: CacheLookup) {
        self.cache[lookup as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Every writer's counters, encoded as their sums.
#[derive(Debug, Default)]
struct QueryStats {
    shared: QueryCounters,
    workers: Mutex<Vec<Arc<QueryCounters>>>,
}

impl QueryStats {
    /// `read` summed over every writer.
    fn sum(&self, read: impl Fn(&QueryCounters) -> u64) -> u64 {
        let workers = match self.workers.lock() {
            Ok(workers) => workers,
            Err(poisoned) => poisoned.into_inner(),
        };
        read(&self.shared) + workers.iter().map(|counters| read(counters)).sum::<u64>()
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Collector for QueryStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "queries",
            "Queries answered, by query type and response code",
            None,
            MetricType::Counter,
        )?;
        for (t, qtype) in QTYPES.iter().enumerate() {
            for (r, rcode) in RCODES.iter().enumerate() {
                let count = self.sum(|c| load(&c.queries[t][r]));
                if count > 0 {
                    let labels = [("qtype", *qtype), ("rcode", *rcode)];
                    ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let buckets: Vec<(f64, u64)> = LATENCY_SECONDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(at, bound)| (bound, self.sum(|c| load(&c.latency[at]))))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let seconds = self.sum(|c| load(&c.latency_nanos)) as f64 / 1e9;
        encoder
            .encode_descriptor(
                "query_duration_seconds",
                "Time from a received query to its answer handed to the socket",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(seconds, count, &buckets, None)?;
        let mut family = encoder.encode_descriptor(
            "packet_cache_lookups",
            "UDP queries by how the packet cache answered them: hit, miss (answered, then cached) or bypass (not cacheable)",
            None,
            MetricType::Counter,
        )?;
        for (at, result) in LOOKUPS.iter().enumerate() {
            let count = self.sum(|c| load(&c.cache[at]));
            ConstCounter::new(count).encode(family.encode_family(&[("result", *result)])?)?;
        }
        Ok(())
    }
}
