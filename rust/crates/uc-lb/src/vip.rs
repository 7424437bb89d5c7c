//! Virtual IPs: a listener whose address is on no interface of this node is
//! a VIP, held by one uc-lb at a time. Each uc-lb serving it campaigns for
//! the leased key `keys::lb_vip(address)` (`campaign`); the holder adds the
//! address to an interface over rtnetlink (`netlink`), announces it with
//! gratuitous ARP or an unsolicited NA (`announce`), and removes it when
//! its lease is lost or uc-lb stops. The others watch the key and take
//! over when it goes, within the lease TTL.
//!
//! Listeners bind with IP_FREEBIND (`bind_tcp`, `bind_udp`), so a node that
//! does not hold a VIP still serves it, ready for the moment it does.

mod announce;
mod campaign;
mod netlink;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uc_daemon::metrics::{Counter, Family, Gauge, Registry};

use crate::report::Reports;
use crate::supervisor::Desired;

pub use netlink::{Netlink, NetlinkError, ADDRESS_PROTOCOL};

/// How this node holds VIPs (`cluster.lb.vip`, or `--vip-*` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipSettings {
    /// The interface a held VIP goes on; `None`: the one with an address
    /// whose subnet holds the VIP.
    pub interface: Option<String>,
    pub lease_ttl: Duration,
}

impl Default for VipSettings {
    fn default() -> Self {
        VipSettings {
            interface: None,
            lease_ttl: Duration::from_secs(5),
        }
    }
}

/// One VIP as this node sees it: in /health and the listener status keys.
pub use uc_types::LbVipStatus as VipStatus;

/// What the campaigns report, keyed by VIP; read by `report`.
#[derive(Default)]
pub struct Board {
    vips: Mutex<BTreeMap<IpAddr, VipStatus>>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<IpAddr, VipStatus>> {
        match self.vips.lock() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn get(&self, ip: IpAddr) -> Option<VipStatus> {
        self.lock().get(&ip).cloned()
    }

    /// Whether it changed.
    fn set(&self, ip: IpAddr, status: VipStatus) -> bool {
        self.lock().insert(ip, status.clone()) != Some(status)
    }

    fn remove(&self, ip: IpAddr) {
        self.lock().remove(&ip);
    }
}

pub type VipLabels = [(&'static str, String); 1];

/// `uc_lb_vip_held{address}` and `uc_lb_vip_takeovers_total{address}`.
#[derive(Clone, Default)]
pub struct VipMetrics {
    pub held: Family<VipLabels, Gauge>,
    pub takeovers: Family<VipLabels, Counter>,
}

impl VipMetrics {
    pub fn register(registry: &mut Registry) -> VipMetrics {
        let metrics = VipMetrics::default();
        registry.register(
            "vip_held",
            "1 while this node holds the VIP (the address is on its interface), else 0",
            metrics.held.clone(),
        );
        registry.register(
            "vip_takeovers",
            "Times this node took the VIP (won its store lease and brought the address up)",
            metrics.takeovers.clone(),
        );
        metrics
    }
}

fn labels(ip: IpAddr) -> VipLabels {
    [("address", ip.to_string())]
}

/// Everything a campaign shares with the others.
pub(crate) struct Shared {
    pub endpoints: Vec<String>,
    pub node: String,
    pub settings: VipSettings,
    pub netlink: Netlink,
    pub board: Arc<Board>,
    pub reports: Arc<Reports>,
    pub metrics: VipMetrics,
}

impl Shared {
    fn report(&self, ip: IpAddr, status: VipStatus) {
        self.metrics
            .held
            .get_or_create(&labels(ip))
            .set(i64::from(status.held));
        if self.board.set(ip, status) {
            self.reports.changed();
        }
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Starts and stops one campaign per VIP among the desired listeners.
pub struct Vips {
    shared: Arc<Shared>,
    running: BTreeMap<IpAddr, Running>,
}

impl Vips {
    pub fn new(
        endpoints: Vec<String>,
        node: String,
        settings: VipSettings,
        board: Arc<Board>,
        reports: Arc<Reports>,
        metrics: VipMetrics,
    ) -> Result<Vips, NetlinkError> {
        Ok(Vips {
            shared: Arc::new(Shared {
                endpoints,
                node,
                settings,
                netlink: Netlink::new()?,
                board,
                reports,
                metrics,
            }),
            running: BTreeMap::new(),
        })
    }

    /// Follows the desired listeners until `desired` closes or `stop`
    /// turns true; then releases every VIP held (address removed, key
    /// deleted) so another node takes it at once.
    pub async fn run(
        mut self,
        mut desired: watch::Receiver<Option<Arc<Desired>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        // Addresses an earlier uc-lb on this node left up (killed before it
        // could remove them): nobody here holds them now.
        match self.shared.netlink.remove_ours().await {
            Ok(removed) if !removed.is_empty() => {
                tracing::warn!(?removed, "removed VIPs a previous uc-lb left on this node")
            }
            Ok(_) => {}
            Err(err) => tracing::error!(%err, "cannot list this node's addresses"),
        }
        loop {
            let next = desired.borrow_and_update().clone();
            if let Some(next) = next {
                self.apply(&next).await;
            }
            tokio::select! {
                changed = desired.changed() => if changed.is_err() { break },
                () = stopped(&mut stop) => break,
            }
        }
        self.release_all().await;
    }

    async fn apply(&mut self, desired: &Desired) {
        let wanted = match self.vips_of(desired).await {
            Ok(wanted) => wanted,
            Err(err) => {
                tracing::error!(%err, "cannot list this node's addresses; VIPs unchanged");
                return;
            }
        };
        let gone: Vec<IpAddr> = self
            .running
            .keys()
            .filter(|ip| !wanted.contains(ip))
            .copied()
            .collect();
        for ip in gone {
            if let Some(running) = self.running.remove(&ip) {
                tracing::info!(vip = %ip, "no listener on the VIP any more; releasing it");
                stop_campaign(running).await;
                self.shared.board.remove(ip);
                self.shared.metrics.held.remove(&labels(ip));
                self.shared.reports.changed();
            }
        }
        for ip in wanted {
            if self.running.contains_key(&ip) {
                continue;
            }
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(campaign::run(self.shared.clone(), ip, stopped));
            self.running.insert(ip, Running { stop, task });
        }
    }

    /// The desired listeners' addresses that are on no interface here
    /// (or are on one only because a campaign of this uc-lb put them there).
    async fn vips_of(&self, desired: &Desired) -> Result<Vec<IpAddr>, NetlinkError> {
        let addresses = self.shared.netlink.addresses().await?;
        let mut vips: Vec<IpAddr> = desired
            .values()
            .filter_map(|spec| spec.as_ref().ok())
            .map(|spec| spec.bind.ip())
            .filter(|ip| netlink::is_vip(&addresses, *ip))
            .collect();
        vips.sort();
        vips.dedup();
        Ok(vips)
    }

    async fn release_all(&mut self) {
        let running = std::mem::take(&mut self.running);
        let stops = running.into_values().map(stop_campaign);
        futures_util::future::join_all(stops).await;
    }
}

/// Resolves when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Tells a campaign to stop and waits (bounded) for it to release its VIP.
async fn stop_campaign(running: Running) {
    let _ = running.stop.send(true);
    let mut task = running.task;
    if tokio::time::timeout(Duration::from_secs(3), &mut task)
        .await
        .is_err()
    {
        tracing::warn!("a VIP campaign did not stop within 3 s");
        task.abort();
    }
}

/// A listening TCP socket with SO_REUSEADDR (a restarted uc-lb binds while
/// old connections linger in TIME_WAIT) and IP_FREEBIND (a VIP this node
/// does not hold yet binds all the same).
pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = socket(addr, socket2::Type::STREAM)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// A UDP socket with IP_FREEBIND, as `bind_tcp`.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let socket = socket(addr, socket2::Type::DGRAM)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}

fn socket(addr: SocketAddr, kind: socket2::Type) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), kind, None)?;
    if addr.is_ipv4() {
        socket.set_freebind_v4(true)?;
    } else {
        socket.set_freebind_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}
