//! The audit log: every login, revocation and key rotation, granted or
//! denied, as `AuditRecord`s at `/uc/v1/iam/audit/<unix ms>-<seq>`.
//!
//! Bounded by time: records are written on a store lease of the retention
//! period, one lease per hour of records (so an hour's records go
//! together and the store holds at most retention + 1 h of them, and one
//! lease an hour). A failed write is logged and counted, never blocks the
//! request it records.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use etcd_client::Client;
use tokio::sync::Mutex;
use uc_types::iam::AuditRecord;
use uc_types::keys;

use crate::metrics::Metrics;
use crate::store;

pub struct AuditLog {
    client: Client,
    retention_seconds: u64,
    /// (hour since the epoch, its lease)
    lease: Mutex<Option<(u64, i64)>>,
    seq: AtomicU32,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    pub fn new(client: Client, retention_seconds: u64, metrics: Arc<Metrics>) -> AuditLog {
        AuditLog {
            client,
            retention_seconds,
            lease: Mutex::new(None),
            seq: AtomicU32::new(0),
            metrics,
        }
    }

    pub async fn record(&self, action: &str, subject: &str, granted: bool, detail: String) {
        let at_ms = now_ms();
        tracing::info!(action, subject, granted, detail, "audit");
        let record = AuditRecord {
            at_ms,
            action: action.into(),
            subject: subject.into(),
            granted,
            detail,
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        let mut client = self.client.clone();
        let result = async {
            let lease = self.lease_for(&mut client, at_ms / 3_600_000).await?;
            store::put(
                &mut client,
                &keys::iam_audit(at_ms, seq),
                &record,
                Some(lease),
            )
            .await
        }
        .await;
        if let Err(err) = result {
            self.metrics.audit_failures.inc();
            tracing::warn!(%err, "audit record not written");
        }
    }

    async fn lease_for(&self, client: &mut Client, hour: u64) -> Result<i64, store::StoreError> {
        let mut current = self.lease.lock().await;
        if let Some((held, id)) = *current {
            if held == hour {
                return Ok(id);
            }
        }
        // The hour's last record lives the whole retention period.
        let id = store::lease(client, self.retention_seconds + 3600).await?;
        *current = Some((hour, id));
        Ok(id)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
