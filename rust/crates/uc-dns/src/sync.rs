//! Keeps the served snapshot equal to the store: reads everything uc-dns
//! needs in one transaction, then watches the keyspace from the next
//! revision (so no change falls between), applies changes key by key and
//! publishes a new snapshot once a burst has settled. A probe every second
//! tells a silent store from a dead one; on any failure the session starts
//! over with a full read, and meanwhile the last snapshot keeps answering.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::time::Instant;
use tracing::Instrument;
use uc_types::keys;

use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::notify::{self, Notifier};
use crate::snapshot::Published;
use crate::status::SyncStatus;
use crate::store::{Changed, StoreState};

/// Changes arriving this close together make one reload.
const SETTLE: Duration = Duration::from_millis(10);
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A store request (connect, read, probe) slower than this fails the session.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("store: {0}")]
    Store(#[from] etcd_client::Error),
    #[error("store did not answer the {what} within {STORE_TIMEOUT:?}")]
    Timeout { what: &'static str },
    #[error("the watch on {prefix} ended")]
    WatchEnded { prefix: &'static str },
    #[error("the watch was canceled by the store (compacted at {compact_revision}): {reason}")]
    WatchCanceled {
        reason: String,
        compact_revision: i64,
    },
}

pub struct Syncer {
    pub endpoints: Vec<String>,
    pub catalog: Catalog,
    pub published: Arc<Published>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<SyncStatus>,
    pub notifier: Notifier,
}

impl Syncer {
    /// Never returns: sessions with the store, one after the other.
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(200);
        let mut session: u64 = 0;
        loop {
            session += 1;
            let span = tracing::info_span!("store_session", session);
            let mut synced = false;
            let result = self.session(&mut synced).instrument(span).await;
            self.status.connected(false);
            self.metrics.store_connected.set(0);
            if let Err(err) = result {
                self.status.set_error(Some(err.to_string()));
                tracing::warn!(%err, retry_in = ?backoff, "store unreachable; answering from the last snapshot");
            }
            // A session that got as far as reading was a working store: retry soon.
            if synced {
                backoff = Duration::from_millis(200);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One connection: read, watch, apply; sets `synced` once it has read.
    async fn session(&mut self, synced: &mut bool) -> Result<(), SyncError> {
        let options = ConnectOptions::new().with_connect_timeout(STORE_TIMEOUT);
        let mut client = within("connect", Client::connect(&self.endpoints, Some(options))).await?;
        let mut state = StoreState::default();
        let revision = within("initial read", read_all(&mut client, &mut state)).await?;
        self.status.contact();
        *synced = true;
        self.publish(&state, revision);
        let watch = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut stream = within("watch", client.watch(keys::PREFIX, Some(watch))).await?;
        self.status.connected(true);
        self.metrics.store_connected.set(1);
        tracing::info!(revision, zones = state.zones.len(), "watching the store");
        let mut applied = revision;
        let mut reload_at: Option<Instant> = None;
        let mut probe = tokio::time::interval(PROBE_EVERY);
        loop {
            tokio::select! {
                message = stream.message() => {
                    let response = message?.ok_or(SyncError::WatchEnded { prefix: keys::PREFIX })?;
                    if response.canceled() {
                        return Err(SyncError::WatchCanceled {
                            reason: response.cancel_reason().to_owned(),
                            compact_revision: response.compact_revision(),
                        });
                    }
                    self.status.contact();
                    let mut changed = false;
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        let key = String::from_utf8_lossy(kv.key());
                        let value = match event.event_type() {
                            EventType::Put => Some(kv.value()),
                            EventType::Delete => None,
                        };
                        changed |= state.apply(&key, value, kv.mod_revision()) != Changed::Nothing;
                    }
                    if let Some(header) = response.header() {
                        applied = applied.max(header.revision());
                    }
                    if changed && reload_at.is_none() {
                        reload_at = Some(Instant::now() + SETTLE);
                    }
                }
                () = until(reload_at) => {
                    reload_at = None;
                    self.publish(&state, applied);
                }
                _ = probe.tick() => {
                    let get = client.get(keys::manifest_current(), Some(GetOptions::new().with_count_only()));
                    let response = within("probe", get).await?;
                    self.status.contact();
                    let store_revision = response.header().map_or(applied, |h| h.revision());
                    self.metrics.store_revision.set(store_revision);
                    self.metrics.store_lag.set((store_revision - applied).max(0));
                }
            }
        }
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
    }
}

/// What uc-dns reads, in one transaction (one revision): zones, the
/// manifest, assignments (under services/) and instance statuses.
async fn read_all(client: &mut Client, state: &mut StoreState) -> Result<i64, SyncError> {
    let prefix = || Some(GetOptions::new().with_prefix());
    let txn = Txn::new().and_then([
        TxnOp::get(keys::dns_zones_prefix(), prefix()),
        TxnOp::get(keys::manifest_current(), None),
        TxnOp::get(keys::services_prefix(), prefix()),
        TxnOp::get(keys::instances_prefix(), prefix()),
    ]);
    let response = client.txn(txn).await?;
    for op in response.op_responses() {
        let TxnOpResponse::Get(get) = op else {
            continue;
        };
        for kv in get.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            state.apply(&key, Some(kv.value()), kv.mod_revision());
        }
    }
    Ok(response.header().map_or(0, |h| h.revision()))
}

async fn within<T, E>(
    what: &'static str,
    request: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, SyncError>
where
    SyncError: From<E>,
{
    match tokio::time::timeout(STORE_TIMEOUT, request).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(SyncError::Timeout { what }),
    }
}

async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
