//! `/metrics`: each daemon registers its metrics in one
//! `prometheus_client` [`Registry`] and serves [`render`]'s text. The crate
//! is re-exported so every daemon uses the same version.
//!
//! The hand-written [`Histogram`] below predates the registry; it goes once
//! uc-store's metrics are in a registry.

pub use prometheus_client;
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::registry::Registry;

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry whose metrics are all named `<prefix>_…` (e.g. `uc_store`).
pub fn registry(prefix: &str) -> Registry {
    Registry::with_prefix(prefix)
}

/// The registry in the OpenMetrics text format (Prometheus reads it).
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// A latency histogram with the [`LATENCY_SECONDS`] buckets; observe
/// seconds (`histogram.observe(took.as_secs_f64())`).
pub fn latency_histogram() -> prometheus_client::metrics::histogram::Histogram {
    prometheus_client::metrics::histogram::Histogram::new(LATENCY_SECONDS.iter().copied())
}

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds from 0.1 ms to 5 s: disk commits and network
/// round trips on a healthy cluster sit in the lower half.
pub const LATENCY_SECONDS: &[f64] = &[
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// Hand-written; new code uses [`latency_histogram`] in a [`Registry`].
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then +Inf; not cumulative (render sums them).
    buckets: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = self.bounds.partition_point(|bound| *bound < seconds);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Appends `name` as a histogram (`_bucket`, `_sum`, `_count`) to `out`.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_renders_openmetrics_text() {
        let mut registry = registry("uc_test");
        let requests = Counter::<u64>::default();
        registry.register("requests", "Requests answered", requests.clone());
        let latency = latency_histogram();
        registry.register("latency_seconds", "How long requests took", latency.clone());
        requests.inc();
        latency.observe(0.003);
        let text = render(&registry);
        assert!(text.contains("# TYPE uc_test_requests counter\n"), "{text}");
        assert!(text.contains("uc_test_requests_total 1\n"), "{text}");
        assert!(text.contains("uc_test_latency_seconds_count 1\n"), "{text}");
        assert!(text.contains("uc_test_latency_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn renders_cumulative_buckets_sum_and_count() {
        let histogram = Histogram::new(&[0.001, 0.01]);
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(1)); // on a bound: counts as <= it
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_secs(2));
        let mut out = String::new();
        histogram.render(&mut out, "x_seconds", "How long x took.");
        assert_eq!(
            out,
            "# HELP x_seconds How long x took.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{le=\"0.001\"} 2\nx_seconds_bucket{le=\"0.01\"} 3\n\
             x_seconds_bucket{le=\"+Inf\"} 4\nx_seconds_sum 2.0065\nx_seconds_count 4\n"
        );
    }
}
