//! The XDP counters in /metrics, read from the program's per-CPU map at
//! each scrape (the kernel counts; nothing is copied in between).

use std::sync::Arc;

use uc_daemon::metrics::prometheus_client::collector::Collector;
use uc_daemon::metrics::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use uc_daemon::metrics::prometheus_client::metrics::counter::ConstCounter;
use uc_daemon::metrics::prometheus_client::metrics::gauge::ConstGauge;
use uc_daemon::metrics::prometheus_client::metrics::MetricType;
use uc_types::XdpMode;

use super::ring::Counters;
use super::Fastpath;

#[derive(Clone)]
pub struct XdpMetrics(pub Arc<Fastpath>);

impl std::fmt::Debug for XdpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XdpMetrics")
    }
}

type Field = fn(&Counters) -> u64;

const COUNTERS: [(&str, &str, Field); 3] = [
    (
        "xdp_packets",
        "Packets to the listener's VIP seen by the XDP program",
        |c| c.packets,
    ),
    ("xdp_bytes", "IP bytes of those packets", |c| c.bytes),
    (
        "xdp_new_flows",
        "Flows not in the connection table, given a backend by the Maglev ring",
        |c| c.new_flows,
    ),
];

const DROPS: [(&str, Field); 3] = [
    ("no_backend", |c| c.no_backend),
    ("too_big", |c| c.too_big),
    ("no_route", |c| c.no_route),
];

impl Collector for XdpMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let vips = self.0.counters();
        for (name, help, field) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (listener, counters, _) in &vips {
                let labels = [("listener", listener.as_str())];
                ConstCounter::new(field(counters)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "xdp_dropped",
            "Packets to the VIP the XDP program dropped: no_backend (the ring is empty), too_big (over the path's MTU once encapsulated), no_route (no route or resolved neighbour towards the backend)",
            None,
            MetricType::Counter,
        )?;
        for (listener, counters, _) in &vips {
            for (reason, field) in DROPS {
                let labels = [("listener", listener.as_str()), ("reason", reason)];
                ConstCounter::new(field(counters)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "xdp_backends",
            "Backends in the VIP's Maglev ring (up)",
            None,
            MetricType::Gauge,
        )?;
        for (listener, _, backends) in &vips {
            let labels = [("listener", listener.as_str())];
            let backends = i64::try_from(*backends).unwrap_or(i64::MAX);
            ConstGauge::new(backends).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "xdp_attached",
            "1 per interface the XDP program is attached to, with the mode the kernel took (native may fall back to generic)",
            None,
            MetricType::Gauge,
        )?;
        for (interface, mode) in self.0.attached() {
            let mode = match mode {
                XdpMode::Native => "native",
                XdpMode::Generic => "generic",
            };
            let labels = [("interface", interface.as_str()), ("mode", mode)];
            ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
