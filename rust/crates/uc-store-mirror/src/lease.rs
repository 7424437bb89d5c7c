//! A store connection holding a lease, for a daemon that publishes its own
//! status keys (uc-dns' `report`; uc-lb's `status` has the same shape): the
//! keys are put with [`Leased::put_options`] and disappear when the daemon
//! stops keeping the lease alive. Every request is bounded by
//! [`STORE_TIMEOUT`]; any error ends the session, and the caller starts a
//! new one (a new lease, every key written again).

use etcd_client::{
    Client, ConnectOptions, DeleteOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions,
};

use crate::{within, MirrorError, STORE_TIMEOUT};

pub struct Leased {
    pub client: Client,
    pub lease: i64,
    keeper: LeaseKeeper,
    acks: LeaseKeepAliveStream,
}

impl Leased {
    /// Connects to `endpoints` and grants a lease of `ttl_seconds`.
    pub async fn open(endpoints: &[String], ttl_seconds: i64) -> Result<Leased, MirrorError> {
        let options = ConnectOptions::new().with_connect_timeout(STORE_TIMEOUT);
        let mut client = within("connect", Client::connect(endpoints, Some(options))).await?;
        let lease = within("lease grant", client.lease_grant(ttl_seconds, None))
            .await?
            .id();
        let (keeper, acks) = within("lease keep-alive", client.lease_keep_alive(lease)).await?;
        Ok(Leased {
            client,
            lease,
            keeper,
            acks,
        })
    }

    /// Options that put a key on this lease.
    pub fn put_options(&self) -> PutOptions {
        PutOptions::new().with_lease(self.lease)
    }

    /// Renews the lease; an error if the store does not answer or the lease
    /// is gone (it expired: the keys on it are gone too).
    pub async fn keep_alive(&mut self) -> Result<(), MirrorError> {
        within("lease keep-alive", self.keeper.keep_alive()).await?;
        let ack = within("lease keep-alive", self.acks.message()).await?;
        if ack.is_none_or(|a| a.ttl() <= 0) {
            return Err(MirrorError::Timeout {
                what: "lease keep-alive (lease lost)",
            });
        }
        Ok(())
    }
}

/// Deletes `key` (with `prefix`: every key under it) on a connection of its
/// own, within [`STORE_TIMEOUT`]: a daemon's status on a clean shutdown,
/// rather than waiting for its lease to expire.
pub async fn delete_now(endpoints: &[String], key: &str, prefix: bool) -> Result<(), MirrorError> {
    let options = ConnectOptions::new().with_connect_timeout(STORE_TIMEOUT);
    let mut client = within("connect", Client::connect(endpoints, Some(options))).await?;
    let options = prefix.then(|| DeleteOptions::new().with_prefix());
    within("delete", client.delete(key, options)).await?;
    Ok(())
}
