//! What the XDP program computes, in Rust: the flow hash it takes a new
//! flow's Maglev slot from, and the ring uc-lb writes for a VIP, so that
//! userspace (and the tests) know which backend a flow gets. The layouts
//! of the maps' keys and values, as xdp/balancer.c declares them.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::maglev::Maglev;

/// Maglev's table size, a prime: one ring per VIP (RING_SIZE in balancer.c).
pub const RING_SIZE: u32 = 65_537;
/// VIPs the program holds (MAX_VIPS in balancer.c).
pub const MAX_VIPS: u32 = 16;
/// Backend ids 1..MAX_BACKENDS (0: none; MAX_BACKENDS in balancer.c).
pub const MAX_BACKENDS: u32 = 4096;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// murmur3's finaliser, as `mix` in balancer.c.
fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// A value as the program reads it from the packet: network-order bytes
/// loaded as a native integer.
fn wire_u32(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

fn wire_u16(port: u16) -> u32 {
    u32::from(u16::from_ne_bytes(port.to_be_bytes()))
}

/// `flow_hash` of balancer.c for a packet from `client` to `vip`.
pub fn flow_hash(client: SocketAddrV4, vip: SocketAddrV4, proto: u8) -> u32 {
    let ports = wire_u16(client.port()) | (wire_u16(vip.port()) << 16);
    let mut h: u32 = 0x811c_9dc5;
    h = mix(h ^ wire_u32(*client.ip()));
    h = mix(h ^ wire_u32(*vip.ip()));
    h = mix(h ^ ports);
    mix(h ^ u32::from(proto))
}

/// A VIP's ring: per slot, the index into `backends` (address, weight)
/// or `None`. The Maglev table of uc-lb's maglev.rs, keyed by the backend
/// address (the same table on every LB node); a table larger than the
/// ring (over 655 units of weight) is sampled by its first RING_SIZE slots.
pub fn ring(backends: &[(Ipv4Addr, u32)]) -> Vec<Option<usize>> {
    let names: Vec<String> = backends.iter().map(|(ip, _)| ip.to_string()).collect();
    let weighted: Vec<(&str, u32)> = names
        .iter()
        .zip(backends)
        .map(|(name, (_, weight))| (name.as_str(), *weight))
        .collect();
    let maglev = Maglev::new(&weighted);
    (0..u64::from(RING_SIZE))
        .map(|slot| maglev.lookup(slot))
        .collect()
}

/// The backend a new flow from `client` to `vip` gets with `backends`.
pub fn pick(
    backends: &[(Ipv4Addr, u32)],
    client: SocketAddrV4,
    vip: SocketAddrV4,
    proto: u8,
) -> Option<Ipv4Addr> {
    let slot = flow_hash(client, vip, proto) % RING_SIZE;
    let ring = ring(backends);
    let index = (*ring.get(usize::try_from(slot).ok()?)?)?;
    backends.get(index).map(|(ip, _)| *ip)
}

/// `struct vip_key` of balancer.c: address and port in network order,
/// the IP protocol, a zero pad.
pub fn vip_key(vip: SocketAddrV4, proto: u8) -> [u8; 8] {
    let [a, b, c, d] = vip.ip().octets();
    let [p0, p1] = vip.port().to_be_bytes();
    [a, b, c, d, p0, p1, proto, 0]
}

/// `struct backend` of balancer.c: the address in network order.
pub fn backend_value(ip: Ipv4Addr) -> u32 {
    wire_u32(ip)
}

/// `struct counters` of balancer.c, by field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    pub no_backend: u64,
    pub too_big: u64,
    pub no_route: u64,
}

pub type RawCounters = [u64; 6];

impl Counters {
    /// The sum of the per-CPU values.
    pub fn sum<'a>(per_cpu: impl IntoIterator<Item = &'a RawCounters>) -> Counters {
        let mut total = [0u64; 6];
        for values in per_cpu {
            for (sum, value) in total.iter_mut().zip(values) {
                *sum = sum.wrapping_add(*value);
            }
        }
        let [packets, bytes, new_flows, no_backend, too_big, no_route] = total;
        Counters {
            packets,
            bytes,
            new_flows,
            no_backend,
            too_big,
            no_route,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: u8) -> Vec<(Ipv4Addr, u32)> {
        (1..=n).map(|i| (Ipv4Addr::new(10, 0, 0, i), 1)).collect()
    }

    #[test]
    fn hash_depends_on_every_field() {
        // That the kernel agrees is what tests/xdp.rs checks.
        let client = SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 2), 40000);
        let vip = SocketAddrV4::new(Ipv4Addr::new(10, 0, 100, 1), 80);
        let h = flow_hash(client, vip, IPPROTO_TCP);
        assert_eq!(h, flow_hash(client, vip, IPPROTO_TCP));
        assert_ne!(h, flow_hash(client, vip, IPPROTO_UDP));
        let other = SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 2), 40001);
        assert_ne!(h, flow_hash(other, vip, IPPROTO_TCP));
    }

    #[test]
    fn ring_spreads_evenly_and_removal_moves_only_the_removed_share() {
        let three = backends(3);
        let ring3 = ring(&three);
        let mut shares = [0usize; 3];
        for slot in ring3.iter().flatten() {
            shares[*slot] += 1;
        }
        for share in shares {
            let expected = RING_SIZE as usize / 3;
            assert!(share.abs_diff(expected) < expected / 100, "{shares:?}");
        }
        // Without the third backend: the others' slots stay theirs.
        let two = backends(2);
        let ring2 = ring(&two);
        let moved = ring3
            .iter()
            .zip(&ring2)
            .filter(|(before, after)| matches!(before, Some(i) if *i < 2) && before != after)
            .count();
        // Maglev's minimal disruption: few of the others' slots change.
        assert!(moved < RING_SIZE as usize / 100, "{moved} slots moved");
        assert!(ring(&[]).iter().all(Option::is_none));
    }

    #[test]
    fn weights_set_the_shares() {
        let weighted = [
            (Ipv4Addr::new(10, 0, 0, 1), 2),
            (Ipv4Addr::new(10, 0, 0, 2), 1),
        ];
        let ring = ring(&weighted);
        let first = ring.iter().filter(|slot| **slot == Some(0)).count();
        let expected = RING_SIZE as usize * 2 / 3;
        assert!(
            first.abs_diff(expected) < expected / 100,
            "{first} of {RING_SIZE}"
        );
    }

    #[test]
    fn keys_are_in_network_order() {
        let vip = SocketAddrV4::new(Ipv4Addr::new(10, 0, 100, 1), 80);
        assert_eq!(vip_key(vip, IPPROTO_TCP), [10, 0, 100, 1, 0, 80, 6, 0]);
        assert_eq!(
            backend_value(Ipv4Addr::new(10, 0, 11, 2)).to_ne_bytes(),
            [10, 0, 11, 2]
        );
    }
}
