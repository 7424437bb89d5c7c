//! Reverse names (`d.c.b.a.in-addr.arpa.`, 32 nibbles under `ip6.arpa.`)
//! and the PTR patterns that answer for them, as Knot's mod-synthrecord:
//! a full address name inside a pattern's network gets a PTR, a shorter
//! name on the way to the network is an empty non-terminal.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_server::proto::rr::Name;

/// Placeholders of IPv4 patterns: the four octets.
const IPV4_PLACEHOLDERS: [&str; 4] = ["{a}", "{b}", "{c}", "{d}"];
/// Placeholders of IPv6 patterns: Knot's form of the address (`2001-db8--1`)
/// and its 32 nibbles (`20010db8000000000000000000000001`).
const IPV6_PLACEHOLDERS: [&str; 2] = ["{ip}", "{hex}"];

/// The leading bits of an address a reverse name spells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReversePrefix {
    pub ipv6: bool,
    /// The bits, left-aligned in 128 (an IPv4 address in the top 32).
    pub bits: u128,
    /// How many of them the name gives: 8 per octet, 4 per nibble.
    pub known: u32,
}

impl ReversePrefix {
    fn width(&self) -> u32 {
        if self.ipv6 {
            128
        } else {
            32
        }
    }

    /// The address, if the name spells a whole one.
    pub fn address(&self) -> Option<IpAddr> {
        if self.known != self.width() {
            return None;
        }
        Some(if self.ipv6 {
            IpAddr::V6(Ipv6Addr::from(self.bits))
        } else {
            IpAddr::V4(Ipv4Addr::from((self.bits >> 96) as u32))
        })
    }
}

/// What `name` spells under `in-addr.arpa.` or `ip6.arpa.`: octets without
/// leading zeros (as in `-x`), or one hex digit per label; `None` for any
/// other name.
pub fn reverse_prefix(name: &Name) -> Option<ReversePrefix> {
    let labels: Vec<&[u8]> = name.iter().collect();
    let (tail, address) = labels.split_last_chunk::<2>()?;
    let [kind, arpa] = address;
    if !arpa.eq_ignore_ascii_case(b"arpa") {
        return None;
    }
    let ipv6 = if kind.eq_ignore_ascii_case(b"ip6") {
        true
    } else if kind.eq_ignore_ascii_case(b"in-addr") {
        false
    } else {
        return None;
    };
    let (step, most) = if ipv6 { (4, 32) } else { (8, 4) };
    if tail.len() > most {
        return None;
    }
    let mut bits = 0u128;
    for (at, label) in tail.iter().rev().enumerate() {
        let value = if ipv6 { nibble(label)? } else { octet(label)? };
        bits |= u128::from(value) << (128 - step * (at as u32 + 1));
    }
    Some(ReversePrefix {
        ipv6,
        bits,
        known: step * tail.len() as u32,
    })
}

fn nibble(label: &[u8]) -> Option<u8> {
    match label {
        [digit] => char::from(*digit).to_digit(16).map(|d| d as u8),
        _ => None,
    }
}

fn octet(label: &[u8]) -> Option<u8> {
    // "01" is not how an address is spelled in a reverse name.
    if label.len() > 1 && label[0] == b'0' {
        return None;
    }
    std::str::from_utf8(label).ok()?.parse().ok()
}

/// The top `count` bits of 128.
fn top_bits(count: u32) -> u128 {
    u128::MAX.checked_shl(128 - count).unwrap_or(0)
}

/// `base/prefix`, IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Network {
    pub base: IpAddr,
    pub prefix: u8,
}

impl Network {
    /// The bits of `address` left-aligned in 128, and whether it is IPv6.
    fn aligned(address: IpAddr) -> (bool, u128) {
        match address {
            IpAddr::V4(v4) => (false, u128::from(u32::from(v4)) << 96),
            IpAddr::V6(v6) => (true, u128::from(v6)),
        }
    }

    /// Whether the addresses `prefix` starts and the network share any.
    pub fn overlaps(&self, prefix: &ReversePrefix) -> bool {
        let (ipv6, base) = Network::aligned(self.base);
        let common = top_bits(prefix.known.min(u32::from(self.prefix)));
        ipv6 == prefix.ipv6 && base & common == prefix.bits & common
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let (ipv6, bits) = Network::aligned(address);
        let width = if ipv6 { 128 } else { 32 };
        self.overlaps(&ReversePrefix {
            ipv6,
            bits,
            known: width,
        })
    }
}

/// `network` → `pattern`: a PTR for every address in the network.
#[derive(Debug, Clone, PartialEq)]
pub struct PtrPattern {
    pub network: Network,
    /// An absolute name with placeholders of the network's family.
    pub pattern: String,
}

impl PtrPattern {
    /// A placeholder of the other family in the pattern, if any: it would
    /// stay in the name as written.
    pub fn foreign_placeholder(&self) -> Option<&'static str> {
        let foreign: &[&'static str] = match self.network.base {
            IpAddr::V4(_) => &IPV6_PLACEHOLDERS,
            IpAddr::V6(_) => &IPV4_PLACEHOLDERS,
        };
        foreign.iter().copied().find(|p| self.pattern.contains(p))
    }

    /// The name this pattern gives `address`; `None` if it is not a valid name.
    pub fn target(&self, address: IpAddr) -> Option<Name> {
        let name = match address {
            IpAddr::V4(v4) => {
                let mut name = self.pattern.clone();
                for (placeholder, octet) in IPV4_PLACEHOLDERS.iter().zip(v4.octets()) {
                    name = name.replace(placeholder, &octet.to_string());
                }
                name
            }
            IpAddr::V6(v6) => self
                .pattern
                .replace("{ip}", &knot_form(v6))
                .replace("{hex}", &format!("{:032x}", u128::from(v6))),
        };
        Name::from_ascii(name).ok().filter(Name::is_fqdn)
    }
}

/// The address as mod-synthrecord writes it in a PTR target: RFC 5952 text
/// (the longest run of two or more zero groups shortened, the first of
/// equal runs) with `-` for `:`, and hex groups throughout: a dotted IPv4
/// tail would split the label.
pub fn knot_form(address: Ipv6Addr) -> String {
    let groups = address.segments();
    let (mut best_start, mut best_len) = (0, 0);
    let mut at = 0;
    while at < groups.len() {
        let start = at;
        while at < groups.len() && groups[at] == 0 {
            at += 1;
        }
        if at - start > best_len {
            (best_start, best_len) = (start, at - start);
        }
        at += 1;
    }
    let hex = |groups: &[u16]| -> String {
        let texts: Vec<String> = groups.iter().map(|g| format!("{g:x}")).collect();
        texts.join("-")
    };
    if best_len < 2 {
        return hex(&groups);
    }
    let (before, rest) = groups.split_at(best_start);
    format!("{}--{}", hex(before), hex(&rest[best_len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn ipv6_reverse(address: &str) -> Name {
        let bits = u128::from(address.parse::<Ipv6Addr>().unwrap());
        let nibbles: Vec<String> = (0..32)
            .map(|at| format!("{:x}", (bits >> (4 * at)) & 0xf))
            .collect();
        name(&format!("{}.ip6.arpa.", nibbles.join(".")))
    }

    #[test]
    fn full_reverse_names_are_addresses() {
        for address in [
            "2001:db8::1",
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let parsed = reverse_prefix(&ipv6_reverse(address)).unwrap();
            assert_eq!(
                parsed.address(),
                Some(address.parse().unwrap()),
                "{address}"
            );
        }
        let upper =
            name("A.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.IP6.ARPA.");
        assert_eq!(
            reverse_prefix(&upper).unwrap().address(),
            Some("2001:db8::a".parse().unwrap())
        );
        let v4 = reverse_prefix(&name("7.2.0.192.in-addr.arpa.")).unwrap();
        assert_eq!(v4.address(), Some("192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn other_names_are_not_addresses() {
        for text in [
            "8.b.d.0.1.0.0.2.ip6.arpa.",
            "x.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
            "ab.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
            "01.2.0.192.in-addr.arpa.",
            "256.2.0.192.in-addr.arpa.",
            "1.7.2.0.192.in-addr.arpa.",
            "2.0.192.example.test.",
        ] {
            let address = reverse_prefix(&name(text)).and_then(|p| p.address());
            assert_eq!(address, None, "{text}");
        }
        // 33 nibbles.
        let long = name(&format!("0.{}", ipv6_reverse("2001:db8::1")));
        assert_eq!(reverse_prefix(&long), None);
    }

    #[test]
    fn short_names_overlap_the_networks_they_lead_to() {
        let network = Network {
            base: "2001:db8::".parse().unwrap(),
            prefix: 64,
        };
        let overlaps = |text: &str| network.overlaps(&reverse_prefix(&name(text)).unwrap());
        assert!(overlaps("0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."));
        assert!(overlaps("5.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."));
        assert!(!overlaps("1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."));
        assert!(!overlaps("2.0.192.in-addr.arpa."));
        assert!(network.contains("2001:db8::ffff:1".parse().unwrap()));
        assert!(!network.contains("2001:db8:0:1::".parse().unwrap()));
        assert!(!network.contains("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn ipv6_targets_are_written_as_knot_does() {
        for (address, form) in [
            ("2001:db8::1", "2001-db8--1"),
            ("2001:db8::a:0:0:5", "2001-db8--a-0-0-5"),
            ("2001:db8:0:0:1:0:0:5", "2001-db8--1-0-0-5"),
            ("2001:db8:0:1:1:1:1:1", "2001-db8-0-1-1-1-1-1"),
            ("2001:db8::ffff:102:304", "2001-db8--ffff-102-304"),
            ("::ffff:1.2.3.4", "--ffff-102-304"),
            ("::", "--"),
            ("1::", "1--"),
        ] {
            assert_eq!(knot_form(address.parse().unwrap()), form, "{address}");
        }
        let pattern = PtrPattern {
            network: Network {
                base: "2001:db8::".parse().unwrap(),
                prefix: 64,
            },
            pattern: "host-{ip}.{hex}.example.test.".to_string(),
        };
        assert_eq!(
            pattern.target("2001:db8::1".parse().unwrap()),
            Some(name(
                "host-2001-db8--1.20010db8000000000000000000000001.example.test."
            ))
        );
        assert_eq!(pattern.foreign_placeholder(), None);
        let mixed = PtrPattern {
            pattern: "host-{a}.example.test.".to_string(),
            ..pattern
        };
        assert_eq!(mixed.foreign_placeholder(), Some("{a}"));
    }
}
