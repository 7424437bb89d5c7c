//! PROXY protocol version 2 (haproxy.org's proxy-protocol.txt, section
//! 2.2): the binary header uc-lb can send a backend first on a new
//! connection, so it sees the client's address instead of uc-lb's.

use std::net::{IpAddr, SocketAddr};

/// The 12 bytes every v2 header starts with.
pub const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Stream,
    Datagram,
}

/// The header for a connection from `client` to uc-lb's `local` address.
/// Mixed families are sent as IPv6 (the IPv4 one mapped).
pub fn header(transport: Transport, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (src, dst) = match (client.ip(), local.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (Addr::V4(s.octets()), Addr::V4(d.octets())),
        (s, d) => (Addr::V6(v6(s)), Addr::V6(v6(d))),
    };
    let family: u8 = match src {
        Addr::V4(_) => 0x10,
        Addr::V6(_) => 0x20,
    };
    let protocol: u8 = match transport {
        Transport::Stream => 0x01,
        Transport::Datagram => 0x02,
    };
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&SIGNATURE);
    // Version 2, command PROXY.
    out.push(0x21);
    out.push(family | protocol);
    let addresses: u16 = match src {
        Addr::V4(_) => 12,
        Addr::V6(_) => 36,
    };
    out.extend_from_slice(&addresses.to_be_bytes());
    for addr in [src, dst] {
        match addr {
            Addr::V4(octets) => out.extend_from_slice(&octets),
            Addr::V6(octets) => out.extend_from_slice(&octets),
        }
    }
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&local.port().to_be_bytes());
    out
}

/// The header of a connection uc-lb makes on its own (a health probe):
/// command LOCAL, no addresses; the backend uses the real ones.
pub fn local_header() -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    out
}

#[derive(Clone, Copy)]
enum Addr {
    V4([u8; 4]),
    V6([u8; 16]),
}

fn v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tcp4_header_byte_for_byte() {
        let h = header(
            Transport::Stream,
            "192.0.2.1:56324".parse().unwrap(),
            "198.51.100.7:443".parse().unwrap(),
        );
        let mut expected = SIGNATURE.to_vec();
        expected.extend_from_slice(&[0x21, 0x11, 0x00, 0x0C]);
        expected.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 7]);
        expected.extend_from_slice(&[0xDC, 0x04, 0x01, 0xBB]);
        assert_eq!(h, expected);
    }

    #[test]
    fn families_and_lengths() {
        // (client, local, transport, family byte, total length)
        let table = [
            (
                "[2001:db8::1]:1",
                "[2001:db8::2]:2",
                Transport::Stream,
                0x21,
                16 + 36,
            ),
            (
                "[2001:db8::1]:1",
                "[2001:db8::2]:2",
                Transport::Datagram,
                0x22,
                16 + 36,
            ),
            (
                "10.0.0.1:1",
                "10.0.0.2:2",
                Transport::Datagram,
                0x12,
                16 + 12,
            ),
            (
                "10.0.0.1:1",
                "[2001:db8::2]:2",
                Transport::Stream,
                0x21,
                16 + 36,
            ),
        ];
        for (client, local, transport, family, len) in table {
            let h = header(transport, client.parse().unwrap(), local.parse().unwrap());
            assert_eq!((h[13], h.len()), (family, len), "{client} → {local}");
            let declared = u16::from_be_bytes([h[14], h[15]]) as usize;
            assert_eq!(declared, len - 16, "{client}");
        }
        let mixed = header(
            Transport::Stream,
            "10.0.0.1:1".parse().unwrap(),
            "[2001:db8::2]:2".parse().unwrap(),
        );
        assert_eq!(
            &mixed[16..32],
            &"::ffff:10.0.0.1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        assert_eq!(local_header()[12..], [0x20, 0, 0, 0]);
    }
}
