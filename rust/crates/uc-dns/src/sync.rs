//! uc-dns's view of the store (`uc_store_mirror`): reads zones, the
//! manifest, assignments, instance statuses and traffic drains, and
//! publishes a new snapshot once a burst of changes has settled. While the
//! store is away the last snapshot keeps answering.

use std::sync::Arc;

use uc_store_mirror::{Mirror, MirrorStatus, Placement, Read};
use uc_types::keys;

use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::notify::{self, Notifier};
use crate::snapshot::Published;
use crate::store::{Changed, StoreState};

pub struct Syncer {
    pub endpoints: Vec<String>,
    pub catalog: Catalog,
    pub published: Arc<Published>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<MirrorStatus>,
    pub notifier: Notifier,
    /// Told of every published snapshot (the status `report`).
    pub published_changed: Arc<tokio::sync::Notify>,
}

impl Syncer {
    /// Never returns: sessions with the store, one after the other.
    pub async fn run(self) {
        let endpoints = self.endpoints.clone();
        let status = self.status.clone();
        uc_store_mirror::run(endpoints, self, status).await;
    }
}

impl Mirror for Syncer {
    type State = StoreState;
    const WHILE_UNREACHABLE: &'static str = "answering from the last snapshot";

    fn reads(&self) -> Vec<Read> {
        let mut reads = vec![Read::Prefix(keys::dns_zones_prefix())];
        reads.extend(Placement::reads());
        reads
    }

    fn apply(state: &mut StoreState, key: &str, value: Option<&[u8]>, mod_revision: i64) -> bool {
        state.apply(key, value, mod_revision) != Changed::Nothing
    }

    fn publish(&mut self, state: &StoreState, revision: i64) {
        let previous = self.published.load();
        let span = tracing::info_span!("reload", generation = previous.generation + 1, revision);
        let _entered = span.enter();
        let snapshot = self.catalog.reload(state, &previous, revision);
        let zones: Vec<(String, u32, usize)> = snapshot
            .zones()
            .map(|zone| (zone.apex.to_string(), zone.serial, zone.record_count()))
            .collect();
        tracing::debug!(zones = zones.len(), "snapshot published");
        self.metrics.set_zones(&zones);
        self.metrics.reloads.inc();
        self.metrics.snapshot_revision.set(revision);
        let notices = notify::notices(&previous, &snapshot);
        self.published.store(Arc::new(snapshot));
        self.notifier.send(notices);
        self.published_changed.notify_one();
    }

    fn observe(&mut self, status: &MirrorStatus) {
        self.metrics
            .store_connected
            .set(i64::from(status.is_connected()));
        self.metrics.store_revision.set(status.store_revision());
        self.metrics.store_lag.set(status.lag());
    }
}
