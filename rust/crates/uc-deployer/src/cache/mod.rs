//! A Nix binary cache over HTTP, served from the local Nix store, limited to
//! the closures of the systems the deployer hands out, and signed with the
//! cluster's cache key so that nix-agent (a stock `nix`) can verify it.

mod nix32;
mod signing;
mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

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

#[derive(Default)]
pub(crate) struct CacheMetrics {
    pub(crate) narinfo_hits: AtomicU64,
    pub(crate) narinfo_misses: AtomicU64,
    pub(crate) nar_requests: AtomicU64,
    pub(crate) nar_bytes: AtomicU64,
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
        let counter = if info.is_some() {
            &self.metrics.narinfo_hits
        } else {
            &self.metrics.narinfo_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
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
