//! Tells the link that a VIP moved here: a gratuitous ARP request (IPv4,
//! sender and target both the VIP, broadcast) or an unsolicited neighbour
//! advertisement (IPv6, Override set, to all nodes). Hosts and routers
//! that have the VIP in their neighbour cache replace the old holder's MAC
//! with this node's; Linux does so even within its ARP lock time.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};

/// Sends one announcement of `vip` on interface `index` (MAC `mac`).
/// Blocking (raw sockets; a few microseconds).
pub fn announce(index: u32, mac: [u8; 6], vip: IpAddr) -> io::Result<()> {
    match vip {
        IpAddr::V4(ip) => send_frame(index, &gratuitous_arp(mac, ip)),
        IpAddr::V6(ip) => send_na(index, &unsolicited_na(mac, ip), ip),
    }
}

/// An Ethernet frame holding a gratuitous ARP request, padded to 60 bytes.
pub fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 60] {
    let mut frame = [0u8; 60];
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // ARP
    frame[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    frame[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    frame[18] = 6;
    frame[19] = 4;
    frame[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&ip.octets());
    // Target hardware address stays zero; target protocol address = sender's.
    frame[38..42].copy_from_slice(&ip.octets());
    frame
}

fn send_frame(index: u32, frame: &[u8]) -> io::Result<()> {
    let interface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.index == index)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface {index}")))?;
    let config = pnet_datalink::Config {
        read_timeout: Some(std::time::Duration::from_millis(1)),
        ..pnet_datalink::Config::default()
    };
    match pnet_datalink::channel(&interface, config)? {
        pnet_datalink::Channel::Ethernet(mut tx, _rx) => tx
            .send_to(frame, None)
            .unwrap_or_else(|| Err(io::Error::other("the frame was not sent"))),
        _ => Err(io::Error::other("not an Ethernet channel")),
    }
}

/// An ICMPv6 neighbour advertisement for `ip` with the Override flag and
/// the target link-layer address option (the kernel fills the checksum).
pub fn unsolicited_na(mac: [u8; 6], ip: Ipv6Addr) -> [u8; 32] {
    let mut packet = [0u8; 32];
    packet[0] = 136; // neighbour advertisement
    packet[4] = 0x20; // Override, not Solicited, not Router
    packet[8..24].copy_from_slice(&ip.octets());
    packet[24] = 2; // target link-layer address
    packet[25] = 1; // 8 bytes
    packet[26..32].copy_from_slice(&mac);
    packet
}

fn send_na(index: u32, packet: &[u8], from: Ipv6Addr) -> io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    // Neighbour discovery is accepted only with a hop limit of 255.
    socket.set_multicast_hops_v6(255)?;
    socket.set_multicast_if_v6(index)?;
    socket.bind(&std::net::SocketAddr::new(IpAddr::V6(from), 0).into())?;
    let all_nodes = SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, index);
    socket.send_to(packet, &all_nodes.into())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

    #[test]
    fn a_gratuitous_arp_names_the_vip_as_sender_and_target() {
        let frame = gratuitous_arp(MAC, Ipv4Addr::new(10, 0, 0, 100));
        assert_eq!(frame[0..6], [0xff; 6]);
        assert_eq!(frame[6..12], MAC);
        assert_eq!(frame[12..22], [0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        assert_eq!(frame[22..28], MAC);
        assert_eq!(frame[28..32], [10, 0, 0, 100]);
        assert_eq!(frame[32..38], [0; 6]);
        assert_eq!(frame[38..42], [10, 0, 0, 100]);
    }

    #[test]
    fn an_unsolicited_na_overrides_and_carries_the_mac() {
        let packet = unsolicited_na(MAC, "2001:db8::100".parse().unwrap());
        assert_eq!(packet[0..8], [136, 0, 0, 0, 0x20, 0, 0, 0]);
        assert_eq!(
            Ipv6Addr::from(<[u8; 16]>::try_from(&packet[8..24]).unwrap()),
            "2001:db8::100".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(packet[24..32], [2, 1, 0x02, 0, 0, 0, 0, 0x0a]);
    }
}
