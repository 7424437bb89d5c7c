//! Keeps the desired listeners equal to the store: reads what uc-lb needs
//! in one transaction, watches the keyspace from the next revision, applies
//! changes key by key, and sends the resolved listeners to the supervisor
//! when they differ (a burst of changes settles for 10 ms first). On any
//! failure the session starts over with a full read; meanwhile the
//! listeners keep serving what they had.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;
use uc_types::keys;

use crate::metrics::Metrics;
use crate::spec::Selection;
use crate::store::StoreState;
use crate::supervisor::Desired;

const SETTLE: Duration = Duration::from_millis(10);
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A store request slower than this fails the session.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);

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
    pub selection: Selection,
    /// This uc-lb's node, for listeners with a null address.
    pub node: Option<String>,
    pub desired: watch::Sender<Option<Arc<Desired>>>,
    pub metrics: Arc<Metrics>,
    /// Up while the watch is.
    pub connected: Arc<AtomicBool>,
}

impl Syncer {
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(200);
        let mut session: u64 = 0;
        loop {
            session += 1;
            let mut synced = false;
            let result = self
                .session(&mut synced)
                .instrument(tracing::info_span!("store_session", session))
                .await;
            self.connected.store(false, Ordering::Relaxed);
            self.metrics.store_connected.set(0);
            if let Err(err) = result {
                tracing::warn!(%err, retry_in = ?backoff, "store unreachable; serving the last listeners");
            }
            if synced {
                backoff = Duration::from_millis(200);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn session(&self, synced: &mut bool) -> Result<(), SyncError> {
        let options = ConnectOptions::new().with_connect_timeout(STORE_TIMEOUT);
        let mut client = within("connect", Client::connect(&self.endpoints, Some(options))).await?;
        let mut state = StoreState::default();
        let revision = within("initial read", read_all(&mut client, &mut state)).await?;
        *synced = true;
        self.publish(&state);
        let watch = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut stream = within("watch", client.watch(keys::PREFIX, Some(watch))).await?;
        self.connected.store(true, Ordering::Relaxed);
        self.metrics.store_connected.set(1);
        tracing::info!(revision, "watching the store");
        let mut publish_at: Option<Instant> = None;
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
                    let mut changed = false;
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        let key = String::from_utf8_lossy(kv.key());
                        let value = match event.event_type() {
                            EventType::Put => Some(kv.value()),
                            EventType::Delete => None,
                        };
                        changed |= state.apply(&key, value);
                    }
                    if changed && publish_at.is_none() {
                        publish_at = Some(Instant::now() + SETTLE);
                    }
                }
                () = until(publish_at) => {
                    publish_at = None;
                    self.publish(&state);
                }
                _ = probe.tick() => {
                    let get = client.get(keys::manifest_current(), Some(GetOptions::new().with_count_only()));
                    within("probe", get).await?;
                }
            }
        }
    }

    /// Sends the resolved listeners when they differ from the last sent.
    fn publish(&self, state: &StoreState) {
        let desired = state.desired(&self.selection, self.node.as_deref());
        self.desired.send_if_modified(|current| {
            if current.as_deref() == Some(&desired) {
                return false;
            }
            *current = Some(Arc::new(desired));
            true
        });
    }
}

/// What uc-lb reads, in one transaction (one revision): listeners, the
/// manifest, assignments (under services/) and instance statuses.
async fn read_all(client: &mut Client, state: &mut StoreState) -> Result<i64, SyncError> {
    let prefix = || Some(GetOptions::new().with_prefix());
    let txn = Txn::new().and_then([
        TxnOp::get(keys::lb_listeners_prefix(), prefix()),
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
            state.apply(&String::from_utf8_lossy(kv.key()), Some(kv.value()));
        }
    }
    Ok(response.header().map_or(0, |h| h.revision()))
}

pub async fn within<T, E>(
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
