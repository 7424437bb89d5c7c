//! uc-store-mirror: keeps a daemon's in-memory view of part of the
//! keyspace equal to the store.
//!
//! A session reads everything the daemon needs in one transaction (one
//! revision), then watches the keyspace from the next revision (so no
//! change falls between), applies changes key by key and publishes once a
//! burst has settled. A probe every second tells a silent store from a
//! dead one and measures the lag. On any failure the session starts over,
//! after a backoff, with a fresh state and a full read; meanwhile the
//! daemon keeps serving what it last published.
//!
//! A daemon implements [`Mirror`] (what to read, how a key changes its
//! state, what publishing does) and spawns [`run`]. A daemon that resolves
//! services keeps a [`Placement`] in its state.

pub mod lease;
pub mod placement;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::time::Instant;
use tracing::Instrument;
use uc_types::keys;

pub use placement::Placement;
pub use status::{Health, MirrorStatus};

/// Changes arriving this close together make one publish.
pub const SETTLE: Duration = Duration::from_millis(10);
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A store request (connect, read, probe) slower than this fails the session.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
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

/// One part of the initial read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Key(String),
    Prefix(String),
}

/// A daemon's view of the store.
pub trait Mirror: Send {
    /// What a session builds from the store; every session starts from
    /// `Default` so keys deleted while away are gone.
    type State: Default + Send;

    /// Ends the "store unreachable; …" warning: what the daemon does
    /// meanwhile (e.g. "answering from the last snapshot").
    const WHILE_UNREACHABLE: &'static str;

    /// The keys and prefixes read in the session's first transaction.
    fn reads(&self) -> Vec<Read>;

    /// Applies a put (`Some(value)`) or a delete (`None`) of `key`; whether
    /// it changed anything worth publishing.
    fn apply(state: &mut Self::State, key: &str, value: Option<&[u8]>, mod_revision: i64) -> bool;

    /// Makes `state`, complete up to `revision`, what the daemon serves.
    fn publish(&mut self, state: &Self::State, revision: i64);

    /// Called after `status` changed: the watch came up or went down, or a
    /// probe measured the lag (for the daemon's metrics).
    fn observe(&mut self, status: &MirrorStatus) {
        let _ = status;
    }
}

/// Never returns: sessions with the store, one after the other.
pub async fn run<M: Mirror>(endpoints: Vec<String>, mut mirror: M, status: Arc<MirrorStatus>) {
    let mut backoff = FIRST_BACKOFF;
    let mut session: u64 = 0;
    loop {
        session += 1;
        let span = tracing::info_span!("store_session", session);
        let mut synced = false;
        let result = run_session(&endpoints, &mut mirror, &status, &mut synced)
            .instrument(span)
            .await;
        status.connected(false);
        if let Err(err) = result {
            status.set_error(Some(err.to_string()));
            tracing::warn!(%err, retry_in = ?backoff, "store unreachable; {}", M::WHILE_UNREACHABLE);
        }
        mirror.observe(&status);
        // A session that got as far as reading was a working store: retry soon.
        if synced {
            backoff = FIRST_BACKOFF;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: read, watch, apply; sets `synced` once it has read.
async fn run_session<M: Mirror>(
    endpoints: &[String],
    mirror: &mut M,
    status: &MirrorStatus,
    synced: &mut bool,
) -> Result<(), MirrorError> {
    let options = ConnectOptions::new().with_connect_timeout(STORE_TIMEOUT);
    let mut client = within("connect", Client::connect(endpoints, Some(options))).await?;
    let mut state = M::State::default();
    let reads = mirror.reads();
    let revision = within(
        "initial read",
        read_all::<M>(&mut client, &reads, &mut state),
    )
    .await?;
    status.contact();
    *synced = true;
    mirror.publish(&state, revision);
    let watch = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut stream = within("watch", client.watch(keys::PREFIX, Some(watch))).await?;
    status.connected(true);
    mirror.observe(status);
    tracing::info!(revision, "watching the store");
    let mut applied = revision;
    let mut publish_at: Option<Instant> = None;
    let mut probe = tokio::time::interval(PROBE_EVERY);
    loop {
        tokio::select! {
            message = stream.message() => {
                let response = message?.ok_or(MirrorError::WatchEnded { prefix: keys::PREFIX })?;
                if response.canceled() {
                    return Err(MirrorError::WatchCanceled {
                        reason: response.cancel_reason().to_owned(),
                        compact_revision: response.compact_revision(),
                    });
                }
                status.contact();
                let mut changed = false;
                for event in response.events() {
                    let Some(kv) = event.kv() else { continue };
                    let key = String::from_utf8_lossy(kv.key());
                    let value = match event.event_type() {
                        EventType::Put => Some(kv.value()),
                        EventType::Delete => None,
                    };
                    changed |= M::apply(&mut state, &key, value, kv.mod_revision());
                }
                if let Some(header) = response.header() {
                    applied = applied.max(header.revision());
                }
                if changed && publish_at.is_none() {
                    publish_at = Some(Instant::now() + SETTLE);
                }
            }
            () = until(publish_at) => {
                publish_at = None;
                mirror.publish(&state, applied);
            }
            _ = probe.tick() => {
                let get = client.get(keys::manifest_current(), Some(GetOptions::new().with_count_only()));
                let response = within("probe", get).await?;
                status.contact();
                status.probed(response.header().map_or(applied, |h| h.revision()), applied);
                mirror.observe(status);
            }
        }
    }
}

/// `reads` in one transaction (one revision), applied to `state`; that revision.
async fn read_all<M: Mirror>(
    client: &mut Client,
    reads: &[Read],
    state: &mut M::State,
) -> Result<i64, MirrorError> {
    let ops: Vec<TxnOp> = reads
        .iter()
        .map(|read| match read {
            Read::Key(key) => TxnOp::get(key.as_str(), None),
            Read::Prefix(prefix) => {
                TxnOp::get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            }
        })
        .collect();
    let response = client.txn(Txn::new().and_then(ops)).await?;
    for op in response.op_responses() {
        let TxnOpResponse::Get(get) = op else {
            continue;
        };
        for kv in get.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            M::apply(state, &key, Some(kv.value()), kv.mod_revision());
        }
    }
    Ok(response.header().map_or(0, |h| h.revision()))
}

/// `request`, failing with `Timeout { what }` after [`STORE_TIMEOUT`].
pub async fn within<T, E>(
    what: &'static str,
    request: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, MirrorError>
where
    MirrorError: From<E>,
{
    match tokio::time::timeout(STORE_TIMEOUT, request).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(MirrorError::Timeout { what }),
    }
}

async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
