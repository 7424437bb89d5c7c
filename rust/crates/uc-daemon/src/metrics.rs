//! `/metrics`: each daemon registers its metrics in one
//! `prometheus_client` [`Registry`] and serves [`render`]'s text. The crate
//! is re-exported so every daemon uses the same version.

pub use prometheus_client;
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;
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
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_SECONDS.iter().copied())
}

/// Upper bounds in seconds from 0.1 ms to 5 s: disk commits and network
/// round trips on a healthy cluster sit in the lower half.
pub const LATENCY_SECONDS: &[f64] = &[
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

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
        assert!(
            text.contains("uc_test_latency_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
