//! Leader election over the store: the active scheduler holds
//! `/uc/v1/scheduler/leader`, a key bound to its lease. Only KV, Lease,
//! Watch and Txn are used (etcd's Election service is not part of the API
//! uc-store promises). Every write of the leader carries `guard()`, which
//! compares the key's create revision: once the lease expires or is revoked
//! and the key is deleted (or re-created by another scheduler), a deposed
//! leader's writes fail instead of racing the new leader's.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use uc_types::{keys, unix_seconds, LeaderRecord};

/// Held leadership: the lease it lives on and the create revision of the key.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub holder: String,
    pub lease: i64,
    pub create_revision: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("store: {0}")]
    Store(#[from] etcd_client::Error),
    /// The lease ran out or was revoked; another scheduler may lead now.
    #[error("leadership lost (lease {0} expired or revoked)")]
    Lost(i64),
    #[error("the watch of {0} ended")]
    WatchEnded(String),
}

impl Leadership {
    /// The compare every write of the leader carries: the leader key is still
    /// the one this scheduler created.
    pub fn guard(&self) -> Compare {
        Compare::create_revision(
            keys::scheduler_leader(),
            CompareOp::Equal,
            self.create_revision,
        )
    }

    /// Runs `ops` only while this leadership holds; `Lost` otherwise.
    pub async fn txn(&self, client: &mut Client, ops: Vec<TxnOp>) -> Result<(), LeaderError> {
        let txn = Txn::new().when([self.guard()]).and_then(ops);
        if client.txn(txn).await?.succeeded() {
            Ok(())
        } else {
            Err(LeaderError::Lost(self.lease))
        }
    }

    /// Renews the lease every third of `ttl` until it cannot; returns why.
    pub async fn keep_alive(&self, client: &mut Client, ttl: Duration) -> LeaderError {
        let (mut keeper, mut responses) = match client.lease_keep_alive(self.lease).await {
            Ok(pair) => pair,
            Err(err) => return err.into(),
        };
        let period = (ttl / 3).max(Duration::from_millis(100));
        loop {
            if let Err(err) = keeper.keep_alive().await {
                return err.into();
            }
            // No answer within the TTL: the lease may have run out meanwhile.
            match tokio::time::timeout(ttl, responses.message()).await {
                Ok(Ok(Some(response))) if response.ttl() > 0 => {}
                Ok(Ok(_)) | Err(_) => return LeaderError::Lost(self.lease),
                Ok(Err(err)) => return err.into(),
            }
            tokio::time::sleep(period).await;
        }
    }
}

/// Waits until `holder` holds the leader key, on a fresh lease of `ttl`.
pub async fn campaign(
    client: &mut Client,
    holder: &str,
    ttl: Duration,
) -> Result<Leadership, LeaderError> {
    let key = keys::scheduler_leader();
    let ttl_seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    loop {
        let lease = client.lease_grant(ttl_seconds, None).await?.id();
        let record = LeaderRecord {
            holder: holder.to_owned(),
            since: unix_seconds(),
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.as_str(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let response = client.txn(txn).await?;
        let revision = response.header().map_or(0, |h| h.revision());
        if response.succeeded() {
            tracing::info!(holder, lease, "became the leader");
            return Ok(Leadership {
                holder: holder.to_owned(),
                lease,
                create_revision: revision,
            });
        }
        // Someone else leads: give the lease back and wait for the key to go.
        let _ = client.lease_revoke(lease).await;
        let leader = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get
                .kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
            _ => None,
        });
        let Some(leader) = leader else {
            // Deleted between the compare and the get: try again at once.
            continue;
        };
        tracing::info!(%leader, "standing by");
        wait_for_delete(client, &key, revision).await?;
    }
}

/// Returns once `key` is deleted after `revision`.
async fn wait_for_delete(client: &mut Client, key: &str, revision: i64) -> Result<(), LeaderError> {
    let options = WatchOptions::new().with_start_revision(revision + 1);
    let mut stream = client.watch(key, Some(options)).await?;
    while let Some(response) = stream.message().await? {
        if response.canceled() {
            break;
        }
        if response
            .events()
            .iter()
            .any(|e| e.event_type() == EventType::Delete)
        {
            return Ok(());
        }
    }
    Err(LeaderError::WatchEnded(key.to_owned()))
}
