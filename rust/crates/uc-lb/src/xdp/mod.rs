//! The XDP fast path (Katran's design, issue 16 point 7): xdp/balancer.c,
//! compiled by build.rs, balances the VIPs of listeners with `xdp.enable`
//! in the kernel. This side loads it (only once a listener asks: uc-lb
//! without XDP needs no BPF privileges), attaches it to the listeners'
//! interfaces (native, falling back to generic), and feeds its maps from
//! the same state the userspace listeners serve: the listener's VIP and
//! its backends that are up. A change of backends rewrites the VIP's
//! Maglev ring only: flows in the kernel's connection table keep their
//! backend. Dropping the loaded program detaches it (bpf_link: also when
//! the process dies).

pub mod metrics;
pub mod ring;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuValues};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{Xdp, XdpMode as AttachMode};
use aya::Ebpf;
use tokio::sync::watch;
use uc_types::{ListenerProtocol, XdpMode};

use crate::report::Reports;
use crate::supervisor::Desired;
use ring::{RawCounters, MAX_BACKENDS, MAX_VIPS, RING_SIZE};

/// The compiled program (build.rs), aligned as ELF wants.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/balancer.o"));

/// xdp/pass.c compiled: XDP_PASS only, for the peer of a veth that native
/// XDP_TX sends into (`ip link set dev <peer> xdpdrv obj pass.o sec xdp`).
pub static PASS_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pass.o"));

/// xdp/decap.c compiled: strips the outer header of IPIP packets, for
/// backends without an ipip device (`ip link set dev <if> xdp obj decap.o
/// sec xdp`).
pub static DECAP_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/decap.o"));

/// Writes decap.o and pass.o into `dir` (`uc-lb --write-xdp-programs`).
pub fn write_programs(dir: &std::path::Path) -> Result<(), XdpError> {
    for (name, object) in [("decap.o", DECAP_OBJECT), ("pass.o", PASS_OBJECT)] {
        let path = dir.join(name);
        std::fs::write(&path, object).map_err(|source| XdpError::Write { path, source })?;
    }
    Ok(())
}

/// How often the healthy backends are compared with what the maps hold
/// (backend states change without a new desired state).
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// One VIP the program balances, as wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpVip {
    pub listener: String,
    pub vip: SocketAddrV4,
    pub proto: u8,
    pub interface: String,
    pub mode: XdpMode,
    /// Backends in rotation (up), by address, with their weights; sorted.
    pub backends: Vec<(Ipv4Addr, u32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("cannot load the XDP program (uc-lb needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, or root): {0}")]
    Load(#[from] aya::EbpfError),
    #[error("XDP program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("XDP map: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("cannot count the CPUs for the per-CPU counters: {0}")]
    Cpus(std::io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the XDP object has no {0}")]
    Missing(&'static str),
    #[error("cannot attach XDP to interface {interface}: {source}")]
    Attach {
        interface: String,
        source: aya::programs::ProgramError,
    },
    #[error("cannot turn on IPv4 forwarding on {interface} (the XDP program's route lookups need it): {source}")]
    Forwarding {
        interface: String,
        source: std::io::Error,
    },
    #[error("more than {MAX_VIPS} XDP VIPs; {0} is left to userspace")]
    TooManyVips(SocketAddrV4),
    #[error("more than {MAX_BACKENDS} distinct backends since uc-lb started; {0} is left out")]
    TooManyBackends(Ipv4Addr),
}

/// The XDP VIPs wanted by `desired`, with the backends `reports` shows up.
/// Listeners whose address is IPv6 or whose protocol is L7 are left to
/// userspace (the program handles IPv4 TCP and UDP).
pub fn wanted(desired: &Desired, reports: &Reports) -> Vec<XdpVip> {
    let statuses = reports.statuses("");
    let mut vips = Vec::new();
    for spec in desired.values().flatten() {
        let (true, Some(interface)) = (spec.xdp.enable, spec.xdp.interface.clone()) else {
            continue;
        };
        let proto = match spec.protocol {
            ListenerProtocol::Tcp => ring::IPPROTO_TCP,
            ListenerProtocol::Udp => ring::IPPROTO_UDP,
            _ => continue,
        };
        let SocketAddr::V4(vip) = spec.bind else {
            continue;
        };
        let mut backends: Vec<(Ipv4Addr, u32)> = statuses
            .get(&spec.name)
            .map(|status| {
                status
                    .backends
                    .iter()
                    .filter(|b| b.state == uc_types::LbBackendState::Up)
                    .filter_map(|b| {
                        let weight = spec.weights.get(&b.address).copied().unwrap_or(1);
                        match b.address.ip() {
                            IpAddr::V4(ip) if weight > 0 => Some((ip, weight)),
                            _ => None,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        backends.sort();
        backends.dedup_by_key(|(ip, _)| *ip);
        vips.push(XdpVip {
            listener: spec.name.clone(),
            vip,
            proto,
            interface,
            mode: spec.xdp.mode,
            backends,
        });
    }
    vips
}

/// Listeners with `xdp.enable` that the program cannot take.
fn unsupported(desired: &Desired) -> Vec<String> {
    desired
        .values()
        .flatten()
        .filter(|spec| spec.xdp.enable)
        .filter(|spec| {
            spec.bind.is_ipv6()
                || !matches!(spec.protocol, ListenerProtocol::Tcp | ListenerProtocol::Udp)
        })
        .map(|spec| spec.name.clone())
        .collect()
}

struct Link {
    wanted: XdpMode,
    /// What the kernel took: native may fall back to generic.
    actual: XdpMode,
    id: XdpLinkId,
    /// Forwarding was off and uc-lb turned it on (turned off on detach).
    forwarding_set: bool,
}

fn forwarding_path(interface: &str) -> String {
    format!("/proc/sys/net/ipv4/conf/{interface}/forwarding")
}

/// The program's route lookup (bpf_fib_lookup) answers only on an
/// interface with IPv4 forwarding on; uc-lb turns it on while attached.
/// Whether it was off.
fn enable_forwarding(interface: &str) -> std::io::Result<bool> {
    let path = forwarding_path(interface);
    if std::fs::read_to_string(&path)?.trim() == "1" {
        return Ok(false);
    }
    std::fs::write(&path, "1")?;
    tracing::info!(%interface, "IPv4 forwarding turned on for the XDP program's route lookups (off again when detached)");
    Ok(true)
}

fn restore_forwarding(interface: &str, link: &Link) {
    if link.forwarding_set {
        if let Err(err) = std::fs::write(forwarding_path(interface), "0") {
            tracing::warn!(%interface, %err, "cannot turn IPv4 forwarding off again");
        }
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        for (interface, link) in &self.links {
            restore_forwarding(interface, link);
        }
    }
}

struct VipSlot {
    index: u32,
    listener: String,
    /// Backend id per ring slot, as written.
    ring: Vec<u32>,
    backends: usize,
}

/// The loaded program and its maps.
struct Loaded {
    ebpf: Ebpf,
    vips: BpfHashMap<MapData, [u8; 8], u32>,
    rings: Array<MapData, u32>,
    backends: Array<MapData, u32>,
    stats: PerCpuArray<MapData, RawCounters>,
    links: BTreeMap<String, Link>,
    slots: BTreeMap<[u8; 8], VipSlot>,
    /// Never reused while uc-lb runs: a remembered flow's id keeps
    /// meaning the backend it started on.
    backend_ids: HashMap<Ipv4Addr, u32>,
}

/// The fast path shared by the task feeding it, the metrics and the
/// daemon (which unloads it on shutdown).
#[derive(Default)]
pub struct Fastpath {
    loaded: Mutex<Option<Loaded>>,
    applied: Mutex<Option<Vec<XdpVip>>>,
}

impl Fastpath {
    fn lock(&self) -> MutexGuard<'_, Option<Loaded>> {
        match self.loaded.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Makes the kernel's program and maps hold `wanted`. An error of one
    /// interface or VIP leaves the others applied; all are returned (the
    /// caller tries again later).
    pub fn apply(&self, wanted: &[XdpVip]) -> Vec<XdpError> {
        let mut guard = self.lock();
        if wanted.is_empty() && guard.is_none() {
            return Vec::new();
        }
        if guard.is_none() {
            match Loaded::load() {
                Ok(loaded) => *guard = Some(loaded),
                Err(err) => return vec![err],
            }
            tracing::info!("XDP program loaded");
        }
        let Some(loaded) = guard.as_mut() else {
            return Vec::new();
        };
        let mut errors = loaded.attach(wanted);
        errors.extend(loaded.feed(wanted));
        if wanted.is_empty() {
            *guard = None;
            tracing::info!("no listener wants XDP: program detached and unloaded");
        }
        errors
    }

    /// Detaches and unloads the program.
    pub fn unload(&self) {
        if self.lock().take().is_some() {
            tracing::info!("XDP program detached");
        }
    }

    /// Per VIP: listener, summed counters, backends in its ring.
    pub fn counters(&self) -> Vec<(String, ring::Counters, usize)> {
        let guard = self.lock();
        let Some(loaded) = guard.as_ref() else {
            return Vec::new();
        };
        loaded
            .slots
            .values()
            .map(|slot| {
                let counters = loaded
                    .stats
                    .get(&slot.index, 0)
                    .map(|per_cpu| ring::Counters::sum(per_cpu.iter()))
                    .unwrap_or_default();
                (slot.listener.clone(), counters, slot.backends)
            })
            .collect()
    }

    /// Interfaces the program is attached to, with the mode the kernel took.
    pub fn attached(&self) -> Vec<(String, XdpMode)> {
        self.lock()
            .as_ref()
            .map(|l| {
                l.links
                    .iter()
                    .map(|(i, link)| (i.clone(), link.actual))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Feeds the maps from the desired listeners and backend states until
    /// `desired` closes: at every new desired state and every CHECK_EVERY.
    pub async fn run(
        self: Arc<Self>,
        mut desired: watch::Receiver<Option<Arc<Desired>>>,
        reports: Arc<Reports>,
    ) {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_errors = String::new();
        let mut last_unsupported = Vec::new();
        loop {
            tokio::select! {
                changed = desired.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
            }
            let current = desired.borrow().clone();
            let Some(current) = current else { continue };
            let unsupported = unsupported(&current);
            if unsupported != last_unsupported && !unsupported.is_empty() {
                tracing::warn!(listeners = ?unsupported, "xdp.enable on listeners the XDP program cannot take (IPv6 address, or http/https); they are served in userspace only");
            }
            last_unsupported = unsupported;
            let vips = wanted(&current, &reports);
            if last_errors.is_empty() && self.applied_lock().as_ref() == Some(&vips) {
                continue;
            }
            let this = self.clone();
            let errors = tokio::task::spawn_blocking(move || {
                let errors = this.apply(&vips);
                *this.applied_lock() = Some(vips);
                errors.iter().map(ToString::to_string).collect::<Vec<_>>()
            })
            .await
            .unwrap_or_else(|join| vec![join.to_string()]);
            // Logged when they change, not at every retry.
            let joined = errors.join("; ");
            if joined != last_errors {
                for err in &errors {
                    tracing::error!(%err, "XDP");
                }
                if errors.is_empty() {
                    tracing::info!("XDP errors cleared");
                }
            }
            last_errors = joined;
            if !last_errors.is_empty() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    fn applied_lock(&self) -> MutexGuard<'_, Option<Vec<XdpVip>>> {
        match self.applied.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl Loaded {
    fn load() -> Result<Loaded, XdpError> {
        let mut ebpf = Ebpf::load(OBJECT)?;
        let program: &mut Xdp = ebpf
            .program_mut("balancer")
            .ok_or(XdpError::Missing("program balancer"))?
            .try_into()?;
        program.load()?;
        let mut take = |name: &'static str| ebpf.take_map(name).ok_or(XdpError::Missing(name));
        let vips = BpfHashMap::try_from(take("vips")?)?;
        let rings = Array::try_from(take("rings")?)?;
        let backends = Array::try_from(take("backends")?)?;
        let stats = PerCpuArray::try_from(take("stats")?)?;
        Ok(Loaded {
            ebpf,
            vips,
            rings,
            backends,
            stats,
            links: BTreeMap::new(),
            slots: BTreeMap::new(),
            backend_ids: HashMap::new(),
        })
    }

    /// Attaches to the wanted interfaces, detaches from the others.
    fn attach(&mut self, wanted: &[XdpVip]) -> Vec<XdpError> {
        let mut modes: BTreeMap<&str, XdpMode> = BTreeMap::new();
        for vip in wanted {
            let mode = modes.entry(&vip.interface).or_insert(vip.mode);
            if *mode != vip.mode {
                tracing::warn!(interface = %vip.interface, listener = %vip.listener, "listeners ask for different XDP modes on one interface; the first one's ({mode:?}) is used");
            }
        }
        let mut errors = Vec::new();
        let Some(program) = self.ebpf.program_mut("balancer") else {
            return vec![XdpError::Missing("program balancer")];
        };
        let program: &mut Xdp = match program.try_into() {
            Ok(p) => p,
            Err(err) => return vec![XdpError::Program(err)],
        };
        let stale: Vec<String> = self
            .links
            .iter()
            .filter(|(i, link)| modes.get(i.as_str()) != Some(&link.wanted))
            .map(|(i, _)| i.clone())
            .collect();
        for interface in stale {
            if let Some(link) = self.links.remove(&interface) {
                restore_forwarding(&interface, &link);
                if let Err(err) = program.detach(link.id) {
                    tracing::warn!(%interface, %err, "XDP detach");
                }
                tracing::info!(%interface, "XDP detached");
            }
        }
        for (interface, mode) in modes {
            if self.links.contains_key(interface) {
                continue;
            }
            // Attached first, so a missing interface is reported as such.
            let (id, actual) = match attach(program, interface, mode) {
                Ok(attached) => attached,
                Err(source) => {
                    errors.push(XdpError::Attach {
                        interface: interface.to_owned(),
                        source,
                    });
                    continue;
                }
            };
            let forwarding_set = match enable_forwarding(interface) {
                Ok(set) => set,
                Err(source) => {
                    let _ = program.detach(id);
                    errors.push(XdpError::Forwarding {
                        interface: interface.to_owned(),
                        source,
                    });
                    continue;
                }
            };
            tracing::info!(%interface, wanted = ?mode, mode = ?actual, "XDP attached");
            self.links.insert(
                interface.to_owned(),
                Link {
                    wanted: mode,
                    actual,
                    id,
                    forwarding_set,
                },
            );
        }
        errors
    }

    /// Writes backends, rings and VIPs (in that order, so the program
    /// never finds a VIP whose ring points nowhere) and removes VIPs no
    /// longer wanted.
    fn feed(&mut self, wanted: &[XdpVip]) -> Vec<XdpError> {
        let mut errors = Vec::new();
        let keys: Vec<[u8; 8]> = wanted
            .iter()
            .map(|v| ring::vip_key(v.vip, v.proto))
            .collect();
        let gone: Vec<[u8; 8]> = self
            .slots
            .keys()
            .filter(|k| !keys.contains(k))
            .copied()
            .collect();
        for key in gone {
            if let Err(err) = self.vips.remove(&key) {
                errors.push(err.into());
            }
            if let Some(slot) = self.slots.remove(&key) {
                tracing::info!(listener = %slot.listener, "XDP VIP removed");
            }
        }
        for (vip, key) in wanted.iter().zip(keys) {
            if let Err(err) = self.feed_vip(vip, key) {
                errors.push(err);
            }
        }
        errors
    }

    fn feed_vip(&mut self, vip: &XdpVip, key: [u8; 8]) -> Result<(), XdpError> {
        let index = match self.slots.get(&key) {
            Some(slot) => slot.index,
            None => {
                let used: Vec<u32> = self.slots.values().map(|s| s.index).collect();
                let index = (0..MAX_VIPS)
                    .find(|i| !used.contains(i))
                    .ok_or(XdpError::TooManyVips(vip.vip))?;
                // A VIP's counters start at zero, also in a reused index.
                let cpus = aya::util::nr_cpus().map_err(|(_, err)| XdpError::Cpus(err))?;
                let zeros =
                    PerCpuValues::try_from(vec![[0u64; 6]; cpus]).map_err(XdpError::Cpus)?;
                self.stats.set(index, zeros, 0)?;
                self.slots.insert(
                    key,
                    VipSlot {
                        index,
                        listener: vip.listener.clone(),
                        ring: vec![0; RING_SIZE as usize],
                        backends: 0,
                    },
                );
                index
            }
        };
        let mut ids = Vec::with_capacity(vip.backends.len());
        for (ip, _) in &vip.backends {
            ids.push(self.backend_id(*ip)?);
        }
        let ring: Vec<u32> = ring::ring(&vip.backends)
            .into_iter()
            .map(|slot| slot.and_then(|i| ids.get(i).copied()).unwrap_or(0))
            .collect();
        let Some(slot) = self.slots.get_mut(&key) else {
            return Ok(());
        };
        let mut changed = 0usize;
        for (at, (old, new)) in slot.ring.iter_mut().zip(&ring).enumerate() {
            if old != new {
                let at = u32::try_from(at).unwrap_or(0);
                self.rings.set(index * RING_SIZE + at, *new, 0)?;
                *old = *new;
                changed += 1;
            }
        }
        slot.listener.clone_from(&vip.listener);
        let before = std::mem::replace(&mut slot.backends, vip.backends.len());
        if changed > 0 || before != vip.backends.len() {
            tracing::info!(listener = %vip.listener, vip = %vip.vip, backends = vip.backends.len(), slots_changed = changed, "XDP ring written");
        }
        self.vips.insert(key, index, 0)?;
        Ok(())
    }

    fn backend_id(&mut self, ip: Ipv4Addr) -> Result<u32, XdpError> {
        if let Some(id) = self.backend_ids.get(&ip) {
            return Ok(*id);
        }
        let id = u32::try_from(self.backend_ids.len() + 1).unwrap_or(u32::MAX);
        if id >= MAX_BACKENDS {
            return Err(XdpError::TooManyBackends(ip));
        }
        self.backends.set(id, ring::backend_value(ip), 0)?;
        self.backend_ids.insert(ip, id);
        Ok(id)
    }
}

/// Attaches in `mode`; native falls back to generic when the interface's
/// driver has no XDP.
fn attach(
    program: &mut Xdp,
    interface: &str,
    mode: XdpMode,
) -> Result<(XdpLinkId, XdpMode), aya::programs::ProgramError> {
    if mode == XdpMode::Native {
        match program.attach(interface, AttachMode::Driver) {
            Ok(id) => return Ok((id, XdpMode::Native)),
            Err(err) => {
                tracing::warn!(%interface, %err, "native XDP refused; attaching in generic mode")
            }
        }
    }
    program
        .attach(interface, AttachMode::Skb)
        .map(|id| (id, XdpMode::Generic))
}
