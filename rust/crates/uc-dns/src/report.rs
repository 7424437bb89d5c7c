//! Writes what this uc-dns serves to the store
//! (`keys::dns_server_status(node)`, a `DnsServerStatus`), on a lease of
//! its own so the key disappears when this uc-dns does: rewritten when a
//! snapshot is published or the health changes, never per query. The
//! deployer's `GET /api/v1/dns`, its dashboard and `uc dns` show it per
//! zone. On a store failure it is written again on the next session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::rr::LowerName;
use tokio::sync::Notify;
use uc_store_mirror::lease::{self, Leased};
use uc_store_mirror::{within, MirrorError, MirrorStatus};
use uc_types::{keys, DnsServedZone, DnsServerStatus};

use crate::snapshot::{Published, Snapshot};

/// Short, so a uc-dns that dies without deleting its key is gone from the
/// deployer's view within seconds.
const LEASE_TTL_SECONDS: i64 = 5;
const KEEP_ALIVE_EVERY: Duration = Duration::from_millis(1500);
/// How often the health is looked at (it changes without a snapshot).
const HEALTH_EVERY: Duration = Duration::from_secs(1);

pub struct Reporter {
    pub endpoints: Vec<String>,
    pub node: String,
    pub published: Arc<Published>,
    pub status: Arc<MirrorStatus>,
    /// Notified by the syncer on every published snapshot.
    pub published_changed: Arc<Notify>,
}

/// The status this uc-dns reports now.
pub fn status_of(node: &str, snapshot: &Snapshot, status: &MirrorStatus) -> DnsServerStatus {
    let zones = snapshot
        .zones()
        .map(|zone| {
            let apex = zone.apex.to_string();
            // The store's apexes carry no final dot.
            let apex = apex
                .strip_suffix('.')
                .filter(|a| !a.is_empty())
                .map_or(apex.clone(), str::to_owned);
            let served = DnsServedZone {
                serial: zone.serial,
                records: zone.record_count(),
                signed: snapshot.signer(&LowerName::new(&zone.apex)).is_some(),
            };
            (apex, served)
        })
        .collect::<BTreeMap<_, _>>();
    DnsServerStatus {
        node: node.to_owned(),
        health: status.health(snapshot.generation > 0).as_str().to_owned(),
        store_revision: status.store_revision(),
        store_lag: status.lag(),
        last_error: status.last_error(),
        zones,
    }
}

/// What decides a rewrite: the store's revision moves with every write
/// (this one's too), so it is reported but does not trigger one.
fn differs(a: &DnsServerStatus, b: &DnsServerStatus) -> bool {
    a.health != b.health || a.zones != b.zones || a.last_error != b.last_error
}

impl Reporter {
    pub async fn run(self) {
        loop {
            if let Err(err) = self.session().await {
                tracing::warn!(%err, "cannot write this server's status to the store; retrying");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn session(&self) -> Result<(), MirrorError> {
        let mut leased = Leased::open(&self.endpoints, LEASE_TTL_SECONDS).await?;
        let key = keys::dns_server_status(&self.node);
        let mut written: Option<DnsServerStatus> = None;
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE_EVERY);
        let mut health = tokio::time::interval(HEALTH_EVERY);
        loop {
            let now = status_of(&self.node, &self.published.load(), &self.status);
            if written.as_ref().is_none_or(|w| differs(w, &now)) {
                let value = serde_json::to_string(&now).unwrap_or_default();
                within(
                    "status put",
                    leased
                        .client
                        .put(key.as_str(), value, Some(leased.put_options())),
                )
                .await?;
                tracing::debug!(health = %now.health, zones = now.zones.len(), "status written");
                written = Some(now);
            }
            tokio::select! {
                () = self.published_changed.notified() => {}
                _ = health.tick() => {}
                _ = keep_alive.tick() => leased.keep_alive().await?,
            }
        }
    }

    /// Deletes this node's status (clean shutdown; otherwise the lease
    /// expires).
    pub async fn clear(endpoints: &[String], node: &str) {
        let key = keys::dns_server_status(node);
        if let Err(err) = lease::delete_now(endpoints, &key, false).await {
            tracing::warn!(%err, "cannot delete this server's status; its lease will expire");
        }
    }
}
