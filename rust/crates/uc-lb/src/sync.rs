//! uc-lb's view of the store (`uc_store_mirror`): reads listeners, the
//! manifest, assignments, instance statuses and traffic drains, and sends
//! the resolved listeners to the supervisor when they differ (a burst of
//! changes settles first). While the store is away the listeners keep
//! serving what they had.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;
use uc_store_mirror::{Mirror, MirrorStatus, Placement, Read};
use uc_types::keys;

use crate::metrics::Metrics;
use crate::spec::Selection;
use crate::store::StoreState;
use crate::supervisor::Desired;

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
    /// Never returns: sessions with the store, one after the other.
    pub async fn run(self) {
        let endpoints = self.endpoints.clone();
        uc_store_mirror::run(endpoints, self, Arc::default()).await;
    }
}

impl Mirror for Syncer {
    type State = StoreState;
    const WHILE_UNREACHABLE: &'static str = "serving the last listeners";

    fn reads(&self) -> Vec<Read> {
        let mut reads = vec![Read::Prefix(keys::lb_listeners_prefix())];
        reads.extend(Placement::reads());
        reads
    }

    fn apply(state: &mut StoreState, key: &str, value: Option<&[u8]>, _: i64) -> bool {
        state.apply(key, value)
    }

    /// Sends the resolved listeners when they differ from the last sent.
    fn publish(&mut self, state: &StoreState, _: i64) {
        let desired = state.desired(&self.selection, self.node.as_deref());
        self.desired.send_if_modified(|current| {
            if current.as_deref() == Some(&desired) {
                return false;
            }
            *current = Some(Arc::new(desired));
            true
        });
    }

    fn observe(&mut self, status: &MirrorStatus) {
        let up = status.is_connected();
        self.connected.store(up, Ordering::Relaxed);
        self.metrics.store_connected.set(i64::from(up));
    }
}
