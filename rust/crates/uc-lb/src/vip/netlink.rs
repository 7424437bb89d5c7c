//! This node's addresses over rtnetlink: which listener addresses are
//! VIPs, which interface a VIP goes on, and adding and removing it. uc-lb
//! marks the addresses it adds with its own IFA_PROTO (`ip addr` shows
//! `proto 0x9a`), so it can tell a VIP it brought up from an address the
//! node has, and remove what a killed uc-lb left behind.

use std::io;
use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressProtocol,
};
use rtnetlink::packet_route::link::LinkAttribute;

/// The IFA_PROTO of the addresses uc-lb adds (154: uc-lb's 9154, in a byte).
pub const ADDRESS_PROTOCOL: u8 = 154;

/// One address of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix_len: u8,
    /// Added by uc-lb (a VIP held now or left by a killed uc-lb).
    pub ours: bool,
}

/// The interface a VIP goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
}

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink socket: {0}")]
    Open(#[source] io::Error),
    #[error("{what}: {source}")]
    Request {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("no interface named {0:?} (cluster.lb.vip.interface, --vip-interface)")]
    NoSuchInterface(String),
    #[error(
        "no interface has a subnet holding {0}: set cluster.lb.vip.interface (or --vip-interface)"
    )]
    NoInterface(IpAddr),
}

fn failed(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |source| NetlinkError::Request { what, source }
}

/// The errno of a refused request, if it was one.
fn errno(err: &rtnetlink::Error) -> Option<io::ErrorKind> {
    match err {
        rtnetlink::Error::NetlinkError(message) => Some(message.to_io().kind()),
        _ => None,
    }
}

pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Needs a tokio runtime: the connection runs as a task.
    pub fn new() -> Result<Netlink, NetlinkError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Open)?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    pub async fn addresses(&self) -> Result<Vec<Address>, NetlinkError> {
        let mut dump = self.handle.address().get().execute();
        let mut out = Vec::new();
        while let Some(message) = dump.try_next().await.map_err(failed("list addresses"))? {
            out.extend(address_of(&message));
        }
        Ok(out)
    }

    /// The interface for `vip`: `configured` by name, else the one with an
    /// address (not a VIP) whose subnet holds it.
    pub async fn interface_for(
        &self,
        configured: Option<&str>,
        vip: IpAddr,
    ) -> Result<Interface, NetlinkError> {
        let mut request = self.handle.link().get();
        request = match configured {
            Some(name) => request.match_name(name.to_owned()),
            None => {
                let addresses = self.addresses().await?;
                let index =
                    choose_interface(&addresses, vip).ok_or(NetlinkError::NoInterface(vip))?;
                request.match_index(index)
            }
        };
        let link = match request.execute().try_next().await {
            Ok(Some(link)) => link,
            Ok(None) => return Err(NetlinkError::NoInterface(vip)),
            Err(err) => {
                return Err(match (configured, errno(&err)) {
                    (Some(name), Some(io::ErrorKind::NotFound)) | (Some(name), None) => {
                        NetlinkError::NoSuchInterface(name.to_owned())
                    }
                    _ => NetlinkError::Request {
                        what: "read the interface".to_owned(),
                        source: err,
                    },
                })
            }
        };
        let mut interface = Interface {
            index: link.header.index,
            name: String::new(),
            mac: None,
        };
        for attribute in &link.attributes {
            match attribute {
                LinkAttribute::IfName(name) => interface.name.clone_from(name),
                LinkAttribute::Address(bytes) => interface.mac = bytes.as_slice().try_into().ok(),
                _ => {}
            }
        }
        Ok(interface)
    }

    /// Adds `vip` as a host address (/32, /128; IPv6 without duplicate
    /// address detection, so it is usable at once) marked as uc-lb's.
    pub async fn add(&self, index: u32, vip: IpAddr) -> Result<(), NetlinkError> {
        let full = if vip.is_ipv4() { 32 } else { 128 };
        let mut request = self.handle.address().add(index, vip, full);
        let message = request.message_mut();
        message
            .attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(
                ADDRESS_PROTOCOL,
            )));
        if vip.is_ipv6() {
            message.header.flags |= AddressHeaderFlags::Nodad;
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match request.execute().await {
            Err(err) if errno(&err) == Some(io::ErrorKind::AlreadyExists) => Ok(()),
            result => result.map_err(failed(format!("add {vip}"))),
        }
    }

    /// Removes `vip` wherever uc-lb added it.
    pub async fn remove(&self, vip: IpAddr) -> Result<(), NetlinkError> {
        let mut dump = self
            .handle
            .address()
            .get()
            .set_address_filter(vip)
            .execute();
        let mut found = Vec::new();
        while let Some(message) = dump.try_next().await.map_err(failed("list addresses"))? {
            if address_of(&message).is_some_and(|a| a.ours && a.ip == vip) {
                found.push(message);
            }
        }
        for message in found {
            match self.handle.address().del(message).execute().await {
                Err(err) if errno(&err) == Some(io::ErrorKind::AddrNotAvailable) => {}
                result => result.map_err(failed(format!("remove {vip}")))?,
            }
        }
        Ok(())
    }

    /// Removes every address uc-lb added; which ones.
    pub async fn remove_ours(&self) -> Result<Vec<IpAddr>, NetlinkError> {
        let mut removed = Vec::new();
        for address in self.addresses().await? {
            if address.ours && !removed.contains(&address.ip) {
                self.remove(address.ip).await?;
                removed.push(address.ip);
            }
        }
        Ok(removed)
    }
}

fn address_of(message: &AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    let mut ours = false;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Protocol(p) => ours = u8::from(*p) == ADDRESS_PROTOCOL,
            _ => {}
        }
    }
    Some(Address {
        index: message.header.index,
        // IFA_LOCAL is the address itself; IFA_ADDRESS a peer's on
        // point-to-point links (IPv6 sends IFA_ADDRESS only).
        ip: local.or(address)?,
        prefix_len: message.header.prefix_len,
        ours,
    })
}

/// Whether a listener on `ip` is a VIP: a unicast address that is on no
/// interface, unless uc-lb put it there.
pub fn is_vip(addresses: &[Address], ip: IpAddr) -> bool {
    let special = ip.is_unspecified() || ip.is_loopback() || ip.is_multicast();
    let the_nodes = addresses.iter().any(|a| a.ip == ip && !a.ours);
    !special && !the_nodes
}

/// The interface whose subnet holds `vip` (the longest prefix wins), among
/// the node's own addresses.
pub fn choose_interface(addresses: &[Address], vip: IpAddr) -> Option<u32> {
    addresses
        .iter()
        .filter(|a| !a.ours && in_subnet(a.ip, a.prefix_len, vip))
        .max_by_key(|a| a.prefix_len)
        .map(|a| a.index)
}

fn in_subnet(address: IpAddr, prefix_len: u8, ip: IpAddr) -> bool {
    let (a, b, bits) = match (address, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let prefix = u32::from(prefix_len);
    if prefix == 0 || prefix >= bits {
        // A host address (or a default-sized one) says nothing about a subnet.
        return false;
    }
    (a ^ b) >> (bits - prefix) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(index: u32, ip: &str, prefix_len: u8, ours: bool) -> Address {
        Address {
            index,
            ip: ip.parse().unwrap(),
            prefix_len,
            ours,
        }
    }

    fn node() -> Vec<Address> {
        vec![
            address(1, "127.0.0.1", 8, false),
            address(2, "10.0.0.5", 24, false),
            address(3, "10.0.0.130", 25, false),
            address(2, "10.0.0.100", 32, true),
            address(2, "2001:db8::5", 64, false),
        ]
    }

    #[test]
    fn an_address_on_no_interface_or_put_there_by_uc_lb_is_a_vip() {
        let node = node();
        for (ip, vip) in [
            ("10.0.0.100", true),
            ("10.0.0.101", true),
            ("192.0.2.1", true),
            ("2001:db8::100", true),
            ("10.0.0.5", false),
            ("2001:db8::5", false),
            ("127.0.0.1", false),
            ("127.0.0.2", false),
            ("0.0.0.0", false),
            ("::", false),
            ("224.0.0.1", false),
        ] {
            assert_eq!(is_vip(&node, ip.parse().unwrap()), vip, "{ip}");
        }
    }

    #[test]
    fn a_vip_goes_on_the_interface_of_the_narrowest_subnet_holding_it() {
        let node = node();
        for (ip, index) in [
            ("10.0.0.100", Some(2)),
            ("10.0.0.200", Some(3)),
            ("2001:db8::100", Some(2)),
            ("192.0.2.1", None),
            ("2001:db9::1", None),
        ] {
            assert_eq!(choose_interface(&node, ip.parse().unwrap()), index, "{ip}");
        }
    }
}
