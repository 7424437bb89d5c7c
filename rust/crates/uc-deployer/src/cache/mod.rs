//! A Nix binary cache over HTTP, served from the local Nix store, limited to
//! the closures of the systems the deployer hands out, and signed with the
//! cluster's cache key so that nix-agent (a stock `nix`) can verify it.

mod nix32;
mod signing;
mod store;

use std::collections::BTreeMap;
use std::sync::RwLock;

use uc_daemon::metrics::{Counter, Family, Gauge, Registry};

pub use signing::{KeyError, SigningKey};
pub use store::{LocalStore, OutputError, StoreError};

use store::PathInfo;

/// What the cache serves: store paths by hash part, and by NAR hash for the
/// `/nar/` URLs.
#[derive(Default)]
struct Served {
    by_hash_part: BTreeMap<String, PathInfo>,
    by_nar_hash: BTreeMap<String, String>,
}

pub struct Cache {
    key: SigningKey,
    store: LocalStore,
    served: RwLock<Served>,
    pub(crate) metrics: CacheMetrics,
}

/// The cache's `/metrics` (`uc_deployer_cache_…`), registered by
/// [`CacheMetrics::register`].
#[derive(Default)]
pub(crate) struct CacheMetrics {
    served_paths: Gauge,
    /// By `result`: `hit` or `miss`.
    narinfo_requests: Family<[(&'static str, &'static str); 1], Counter>,
    pub(crate) nar_requests: Counter,
    pub(crate) nar_bytes: Counter,
}

impl CacheMetrics {
    /// Adds the cache's metrics to `registry` (whose prefix is `uc_deployer`).
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "cache_served_paths",
            "Store paths the binary cache serves",
            self.served_paths.clone(),
        );
        registry.register(
            "cache_narinfo_requests",
            "narinfo requests by result",
            self.narinfo_requests.clone(),
        );
        registry.register(
            "cache_nar_requests",
            "NAR downloads started",
            self.nar_requests.clone(),
        );
        registry.register("cache_nar_bytes", "NAR bytes sent", self.nar_bytes.clone());
    }
}

impl Cache {
    pub fn new(key: SigningKey, store: LocalStore) -> Self {
        Self {
            key,
            store,
            served: RwLock::new(Served::default()),
            metrics: CacheMetrics::default(),
        }
    }

    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    pub(crate) fn store(&self) -> &LocalStore {
        &self.store
    }

    /// Serves exactly the closures of `roots` from now on. Returns how many
    /// store paths that is.
    pub async fn set_roots(&self, roots: &[String]) -> Result<usize, StoreError> {
        let closure = self.store.closure(roots).await?;
        let mut next = Served::default();
        for info in closure {
            next.by_nar_hash
                .insert(nix32::nar_file_stem(&info.nar_hash), info.path.clone());
            next.by_hash_part.insert(info.hash_part().to_owned(), info);
        }
        let count = next.by_hash_part.len();
        self.metrics
            .served_paths
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        match self.served.write() {
            Ok(mut served) => *served = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(count)
    }

    pub fn served_paths(&self) -> usize {
        self.read(|s| s.by_hash_part.len())
    }

    fn read<T>(&self, f: impl FnOnce(&Served) -> T) -> T {
        match self.served.read() {
            Ok(served) => f(&served),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// The signed `.narinfo` for a store path hash part, if it is served.
    pub(crate) fn narinfo(&self, hash_part: &str) -> Option<String> {
        let info = self.read(|s| s.by_hash_part.get(hash_part).cloned());
        let result = if info.is_some() { "hit" } else { "miss" };
        self.metrics
            .narinfo_requests
            .get_or_create(&[("result", result)])
            .inc();
        info.map(|info| self.render_narinfo(&info))
    }

    /// The store path whose NAR has this file stem (`/nar/<stem>.nar`).
    pub(crate) fn nar_path(&self, stem: &str) -> Option<String> {
        self.read(|s| s.by_nar_hash.get(stem).cloned())
    }

    fn render_narinfo(&self, info: &PathInfo) -> String {
        let references: Vec<&str> = info
            .references
            .iter()
            .map(|r| store::base_name(r))
            .collect();
        let mut text = format!(
            "StorePath: {}\nURL: nar/{}.nar\nCompression: none\nFileHash: {}\nFileSize: {}\nNarHash: {}\nNarSize: {}\nReferences: {}\n",
            info.path,
            nix32::nar_file_stem(&info.nar_hash),
            info.nar_hash,
            info.nar_size,
            info.nar_hash,
            info.nar_size,
            references.join(" "),
        );
        if let Some(deriver) = &info.deriver {
            text.push_str(&format!("Deriver: {}\n", store::base_name(deriver)));
        }
        text.push_str(&format!(
            "Sig: {}\n",
            self.key.sign(&signing::fingerprint(info))
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-1:dIbf+X4xryAERjId/qOdY5+3cl+5i1gbmnd0FPQgVmNAPu2irZV60PJEx74uWgcg8BBj1ewQOeI9NnZjtOyI8A==";

    #[test]
    fn metrics_keep_their_names() {
        let key = SigningKey::parse("k", SECRET).expect("valid key");
        let cache = Cache::new(key, LocalStore::default());
        let mut registry = uc_daemon::metrics::registry("uc_deployer");
        cache.metrics.register(&mut registry);
        assert_eq!(cache.narinfo(&"0".repeat(32)), None);
        cache.metrics.nar_bytes.inc_by(7);
        let text = uc_daemon::metrics::render(&registry);
        uc_testkit::assert_metrics(
            &text,
            &[
                "# TYPE uc_deployer_cache_served_paths gauge\n",
                "uc_deployer_cache_served_paths 0\n",
                "uc_deployer_cache_narinfo_requests_total{result=\"miss\"} 1\n",
                "uc_deployer_cache_nar_requests_total 0\n",
                "uc_deployer_cache_nar_bytes_total 7\n",
            ],
        );
    }
}
