//! Writes this uc-lb's listener statuses to the store
//! (`keys::lb_listener_status(node, listener)`), on a lease of its own so
//! they disappear when this uc-lb does: a status is rewritten when it
//! changes (a backend goes up, down or drains; a listener binds or fails),
//! and deleted when the listener goes. On a store failure everything is
//! written again on the next session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;
use uc_types::keys;

use uc_store_mirror::lease::{self, Leased};
use uc_store_mirror::{within, MirrorError};

use crate::report::Reports;
use uc_types::LbListenerStatus;

const LEASE_TTL_SECONDS: i64 = 10;
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(3);
/// Changes closer together than this are written together.
const BATCH: Duration = Duration::from_millis(100);

pub struct StatusWriter {
    pub endpoints: Vec<String>,
    pub node: String,
    pub reports: Arc<Reports>,
}

impl StatusWriter {
    pub async fn run(self) {
        let mut session: u64 = 0;
        loop {
            session += 1;
            let result = self
                .session()
                .instrument(tracing::info_span!("status_session", session))
                .await;
            if let Err(err) = result {
                tracing::warn!(%err, "cannot write listener statuses; retrying");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn session(&self) -> Result<(), MirrorError> {
        let mut leased = Leased::open(&self.endpoints, LEASE_TTL_SECONDS).await?;
        let put_options = leased.put_options();
        // Statuses a previous run of this node left (its lease may still live).
        let prefix = keys::lb_node_status_prefix(&self.node);
        within(
            "cleanup",
            leased.client.delete(
                prefix.as_str(),
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            ),
        )
        .await?;
        let mut written: BTreeMap<String, LbListenerStatus> = BTreeMap::new();
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE_EVERY);
        let mut resync = tokio::time::interval(Duration::from_secs(1));
        loop {
            let now = self.reports.statuses(&self.node);
            for (name, status) in &now {
                if written.get(name) == Some(status) {
                    continue;
                }
                let value = serde_json::to_string(status).unwrap_or_default();
                let key = keys::lb_listener_status(&self.node, name);
                within(
                    "status put",
                    leased.client.put(key, value, Some(put_options.clone())),
                )
                .await?;
                written.insert(name.clone(), status.clone());
            }
            let gone: Vec<String> = written
                .keys()
                .filter(|n| !now.contains_key(*n))
                .cloned()
                .collect();
            for name in gone {
                within(
                    "status delete",
                    leased
                        .client
                        .delete(keys::lb_listener_status(&self.node, &name), None),
                )
                .await?;
                written.remove(&name);
            }
            tokio::select! {
                () = self.reports.wait_changed() => tokio::time::sleep(BATCH).await,
                _ = keep_alive.tick() => leased.keep_alive().await?,
                // A draining backend's open connections are in the status: this
                // refreshes them, and notices a drain's end even if its
                // notification was coalesced.
                _ = resync.tick() => {}
            }
        }
    }

    /// Removes this node's statuses (clean shutdown).
    pub async fn clear(endpoints: &[String], node: &str) {
        let prefix = keys::lb_node_status_prefix(node);
        if let Err(err) = lease::delete_now(endpoints, &prefix, true).await {
            tracing::warn!(%err, "cannot remove this node's listener statuses; they go with their lease");
        }
    }
}
