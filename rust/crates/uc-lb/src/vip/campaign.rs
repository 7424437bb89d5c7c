//! One VIP's campaign: a lease of `lease_ttl` and the key
//! `keys::lb_vip(address)` created on it only if absent, so one uc-lb
//! holds the VIP at a time. The holder brings the address up, announces
//! it, and keeps the lease alive; a node that lost watches the key and
//! campaigns again when it is deleted (its holder stopped) or expires (its
//! holder died).
//!
//! Fencing: the holder counts the lease's life from the moment it *sent*
//! the grant or the last answered keep-alive, less a tenth, so its own
//! deadline falls before the store can expire the lease. When the store has not answered
//! by then, the address goes down before another node can win the key.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, LeaseKeepAliveStream, LeaseKeeper,
    PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions, WatchStream,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;
use uc_types::keys;

use super::{announce, labels, stopped, Shared, VipStatus};

/// Bound on one store request.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Announcements after taking a VIP: at once, then one and two seconds
/// later (for a host or switch that missed the first).
const ANNOUNCE_AFTER: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(2),
];

#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error("{0}: {1}")]
    Failed(&'static str, #[source] etcd_client::Error),
    #[error("{0}: no answer within {STORE_TIMEOUT:?}")]
    Timeout(&'static str),
}

async fn within<T>(
    what: &'static str,
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(STORE_TIMEOUT, request).await {
        Ok(result) => result.map_err(|err| StoreError::Failed(what, err)),
        Err(_) => Err(StoreError::Timeout(what)),
    }
}

/// What a round of the campaign ends with.
enum Next {
    /// Campaign again at once.
    Again,
    /// Campaign again after a pause (the store or this node had a problem).
    Pause(Duration),
    Stopped,
}

struct Round<'a> {
    shared: &'a Shared,
    ip: IpAddr,
    key: String,
    stop: &'a mut watch::Receiver<bool>,
}

pub(crate) async fn run(shared: Arc<Shared>, ip: IpAddr, mut stop: watch::Receiver<bool>) {
    let span = tracing::info_span!(parent: None, "vip", vip = %ip);
    async move {
        tracing::info!("campaigning for the VIP");
        loop {
            let mut round = Round {
                shared: &shared,
                ip,
                key: keys::lb_vip(ip),
                stop: &mut stop,
            };
            let next = match round.campaign().await {
                Ok(next) => next,
                Err(err) => {
                    tracing::warn!(%err, "store unreachable; campaigning again in a second");
                    let last = shared.board.get(ip).unwrap_or_default();
                    shared.report(
                        ip,
                        VipStatus {
                            holder: None,
                            ..last
                        },
                    );
                    Next::Pause(Duration::from_secs(1))
                }
            };
            match next {
                Next::Again => {}
                Next::Pause(pause) => {
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = stopped(&mut stop) => break,
                    }
                }
                Next::Stopped => break,
            }
            if *stop.borrow() {
                break;
            }
        }
    }
    .instrument(span)
    .await;
}

impl Round<'_> {
    async fn campaign(&mut self) -> Result<Next, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(STORE_TIMEOUT)
            .with_keep_alive(Duration::from_secs(1), STORE_TIMEOUT);
        let mut client = within(
            "connect",
            Client::connect(&self.shared.endpoints, Some(options)),
        )
        .await?;
        let ttl = self.shared.settings.lease_ttl;
        let sent = Instant::now();
        let lease = within(
            "lease grant",
            client.lease_grant(ttl.as_secs().max(1) as i64, None),
        )
        .await?
        .id();
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.as_str(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                self.key.as_str(),
                self.shared.node.as_str(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(self.key.as_str(), None)]);
        let answer = within("campaign", client.txn(txn)).await?;
        let revision = answer.header().map_or(0, |h| h.revision());
        if answer.succeeded() {
            return self.hold(client, lease, fenced(sent, ttl), revision).await;
        }
        let _ = within("lease revoke", client.lease_revoke(lease)).await;
        let current = answer.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().cloned(),
            _ => None,
        });
        let Some(current) = current else {
            return Ok(Next::Again); // deleted in between
        };
        let holder = String::from_utf8_lossy(current.value()).into_owned();
        if holder == self.shared.node {
            // Left by an earlier run of this uc-lb, its lease not yet expired.
            tracing::info!("the VIP's key names this node from an earlier run; deleting it");
            let stale = Txn::new()
                .when([Compare::lease(
                    self.key.as_str(),
                    CompareOp::Equal,
                    current.lease(),
                )])
                .and_then([TxnOp::delete(self.key.as_str(), None)]);
            within("delete stale key", client.txn(stale)).await?;
            return Ok(Next::Again);
        }
        self.follow(client, holder, revision).await
    }

    /// Waits while another node holds the VIP: until its key goes.
    async fn follow(
        &mut self,
        mut client: Client,
        holder: String,
        revision: i64,
    ) -> Result<Next, StoreError> {
        tracing::info!(%holder, "the VIP is held by another node; watching its key");
        self.report(Some(holder), false, None, None);
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let mut events = within("watch", client.watch(self.key.as_str(), Some(options))).await?;
        loop {
            tokio::select! {
                message = events.message() => {
                    let Some(answer) = message.map_err(|e| StoreError::Failed("watch", e))? else {
                        return Ok(Next::Again);
                    };
                    if answer.canceled() {
                        return Ok(Next::Again);
                    }
                    for event in answer.events() {
                        match (event.event_type(), event.kv()) {
                            (EventType::Delete, _) => {
                                tracing::info!("the VIP's key is gone; campaigning");
                                return Ok(Next::Again);
                            }
                            (EventType::Put, Some(kv)) => {
                                let holder = String::from_utf8_lossy(kv.value()).into_owned();
                                report(self.shared, self.ip, Some(holder), false, None, None);
                            }
                            (EventType::Put, None) => {}
                        }
                    }
                }
                _ = stopped(self.stop) => return Ok(Next::Stopped),
            }
        }
    }

    /// Brings the VIP up and keeps it while the lease lives.
    async fn hold(
        &mut self,
        mut client: Client,
        lease: i64,
        mut deadline: Instant,
        revision: i64,
    ) -> Result<Next, StoreError> {
        let shared = self.shared;
        let ip = self.ip;
        let interface = match shared
            .netlink
            .interface_for(shared.settings.interface.as_deref(), ip)
            .await
        {
            Ok(interface) => interface,
            Err(err) => return Ok(self.cannot_hold(&mut client, lease, None, err).await),
        };
        if let Err(err) = shared.netlink.add(interface.index, ip).await {
            let name = Some(interface.name.clone());
            return Ok(self.cannot_hold(&mut client, lease, name, err).await);
        }
        tracing::info!(interface = %interface.name, "took the VIP: address up");
        shared.metrics.takeovers.get_or_create(&labels(ip)).inc();
        self.report(
            Some(shared.node.clone()),
            true,
            Some(interface.name.clone()),
            None,
        );
        let announcer = interface.mac.map(|mac| {
            tokio::spawn(announce_repeatedly(interface.index, mac, ip).in_current_span())
        });
        let watch = WatchOptions::new().with_start_revision(revision + 1);
        let mut events = client.watch(self.key.as_str(), Some(watch)).await.ok();
        let mut keeper: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
        let every = shared.settings.lease_ttl / 3;
        let mut stopping = false;
        let reason = loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {
                    let sent = Instant::now();
                    match tokio::time::timeout_at(deadline, keep_alive(&mut client, &mut keeper, lease)).await {
                        Ok(Ok(ttl)) if ttl > 0 => deadline = fenced(sent, Duration::from_secs(ttl as u64)),
                        Ok(Ok(_)) => break "the lease expired",
                        Ok(Err(err)) => {
                            tracing::warn!(%err, "cannot renew the VIP's lease; retrying until it would expire");
                            keeper = None;
                        }
                        Err(_) => break "the store did not renew the lease within its TTL",
                    }
                }
                () = tokio::time::sleep_until(deadline) => break "the store did not renew the lease within its TTL",
                gone = key_changed(&mut events, &shared.node) => if gone { break "the VIP's key was deleted or taken" },
                _ = stopped(self.stop) => {
                    stopping = true;
                    break "uc-lb is stopping";
                }
            }
        };
        if let Some(announcer) = announcer {
            announcer.abort();
        }
        match shared.netlink.remove(ip).await {
            Ok(()) => tracing::warn!(reason, "released the VIP: address down"),
            Err(err) => tracing::error!(reason, %err, "cannot remove the VIP's address"),
        }
        self.report(None, false, Some(interface.name), None);
        // The key goes with the lease, so another node campaigns at once.
        let _ = within("lease revoke", client.lease_revoke(lease)).await;
        Ok(if stopping { Next::Stopped } else { Next::Again })
    }

    /// The VIP was won but cannot be brought up here: give it back, and
    /// leave it to another node for a lease's time.
    async fn cannot_hold(
        &mut self,
        client: &mut Client,
        lease: i64,
        interface: Option<String>,
        err: super::NetlinkError,
    ) -> Next {
        tracing::error!(%err, "cannot bring the VIP up on this node; leaving it to another");
        self.report(None, false, interface, Some(err.to_string()));
        let _ = within("lease revoke", client.lease_revoke(lease)).await;
        Next::Pause(self.shared.settings.lease_ttl)
    }

    fn report(
        &self,
        holder: Option<String>,
        held: bool,
        interface: Option<String>,
        error: Option<String>,
    ) {
        report(self.shared, self.ip, holder, held, interface, error);
    }
}

fn report(
    shared: &Shared,
    ip: IpAddr,
    holder: Option<String>,
    held: bool,
    interface: Option<String>,
    error: Option<String>,
) {
    shared.report(
        ip,
        VipStatus {
            holder,
            held,
            interface,
            error,
        },
    );
}

/// When the holder gives the VIP up unless the lease was renewed: a tenth
/// of the TTL before the store could expire it (counted from the request
/// sent, which the store saw later), as slack for a busy runtime.
fn fenced(sent: Instant, ttl: Duration) -> Instant {
    sent + ttl - ttl / 10
}

/// One keep-alive; the TTL left (0: the lease is gone).
async fn keep_alive(
    client: &mut Client,
    keeper: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    lease: i64,
) -> Result<i64, StoreError> {
    if keeper.is_none() {
        *keeper = Some(within("lease keep-alive", client.lease_keep_alive(lease)).await?);
    }
    let Some((keeper, acks)) = keeper.as_mut() else {
        return Err(StoreError::Timeout("lease keep-alive"));
    };
    within("lease keep-alive", keeper.keep_alive()).await?;
    match within("lease keep-alive", acks.message()).await? {
        Some(ack) => Ok(ack.ttl()),
        None => Err(StoreError::Timeout("lease keep-alive (stream closed)")),
    }
}

/// Resolves true when the key is deleted or names another node; never
/// resolves without a watch (the lease still fences the holder).
async fn key_changed(events: &mut Option<WatchStream>, node: &str) -> bool {
    let Some(stream) = events.as_mut() else {
        return std::future::pending().await;
    };
    match stream.message().await {
        Ok(Some(answer)) => answer
            .events()
            .iter()
            .any(|event| match event.event_type() {
                EventType::Delete => true,
                EventType::Put => event.kv().is_some_and(|kv| kv.value() != node.as_bytes()),
            }),
        _ => {
            *events = None;
            false
        }
    }
}

async fn announce_repeatedly(index: u32, mac: [u8; 6], ip: IpAddr) {
    let mut waited = Duration::ZERO;
    for after in ANNOUNCE_AFTER {
        tokio::time::sleep(after.saturating_sub(waited)).await;
        waited = after;
        match tokio::task::spawn_blocking(move || announce::announce(index, mac, ip)).await {
            Ok(Ok(())) => tracing::debug!("VIP announced"),
            Ok(Err(err)) => tracing::warn!(%err, "cannot announce the VIP"),
            Err(_) => {}
        }
    }
}
