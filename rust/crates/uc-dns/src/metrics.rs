//! `/metrics` (OpenMetrics, names `uc_dns_…`): queries by type and response
//! code, answer latency, each zone's serial and size, zone transfers and
//! NOTIFYs, and how current the snapshot is against the store.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;
use uc_daemon::metrics::prometheus_client::metrics::histogram::Histogram;
use uc_daemon::metrics::{Counter, Family, Gauge, Registry};

type QueryLabels = [(&'static str, &'static str); 2];
type ZoneLabels = [(&'static str, String); 1];
type TransferLabels = [(&'static str, &'static str); 2];
type NotifyLabels = [(&'static str, String); 2];

pub struct Metrics {
    registry: Registry,
    queries: Family<QueryLabels, Counter>,
    latency: Histogram,
    zone_serial: Family<ZoneLabels, Gauge>,
    zone_records: Family<ZoneLabels, Gauge>,
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
            queries: Family::default(),
            latency: uc_daemon::metrics::latency_histogram(),
            zone_serial: Family::default(),
            zone_records: Family::default(),
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
        registry.register(
            "queries",
            "Queries answered, by query type and response code",
            self.queries.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Time from a parsed query to its answer handed to the socket",
            self.latency.clone(),
        );
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
            "store_last_sync_age_seconds",
            "Seconds since the store last answered (watch event or probe)",
            self.last_sync_age.clone(),
        );
        self
    }

    pub fn observe_query(&self, qtype: Option<RecordType>, rcode: ResponseCode, took: Duration) {
        let labels = [("qtype", qtype_label(qtype)), ("rcode", rcode_label(rcode))];
        self.queries.get_or_create(&labels).inc();
        self.latency.observe(took.as_secs_f64());
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

    pub fn render(&self) -> String {
        uc_daemon::metrics::render(&self.registry)
    }
}

/// A bounded set of label values: random packets must not grow the family.
fn qtype_label(qtype: Option<RecordType>) -> &'static str {
    match qtype {
        None => "none",
        Some(RecordType::A) => "A",
        Some(RecordType::AAAA) => "AAAA",
        Some(RecordType::ANY) => "ANY",
        Some(RecordType::AXFR) => "AXFR",
        Some(RecordType::CAA) => "CAA",
        Some(RecordType::CNAME) => "CNAME",
        Some(RecordType::DS) => "DS",
        Some(RecordType::DNSKEY) => "DNSKEY",
        Some(RecordType::HTTPS) => "HTTPS",
        Some(RecordType::IXFR) => "IXFR",
        Some(RecordType::MX) => "MX",
        Some(RecordType::NS) => "NS",
        Some(RecordType::PTR) => "PTR",
        Some(RecordType::SOA) => "SOA",
        Some(RecordType::SRV) => "SRV",
        Some(RecordType::SVCB) => "SVCB",
        Some(RecordType::TXT) => "TXT",
        Some(_) => "other",
    }
}

fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "other",
    }
}
