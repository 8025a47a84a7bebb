//! This host's own addresses, as the agent reads them at start: the
//! prefix of its IPv4 address (its subnet) and the IPv6 address beside it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use super::Error;
use super::netlink::{Netlink, nl_err};

fn address_of(msg: &AddressMessage) -> Option<IpAddr> {
    msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    })
}

impl Netlink {
    async fn addresses(&self) -> Result<Vec<AddressMessage>, Error> {
        let _dump = self.dump().await;
        // Read to the end: a dump left half-read keeps the socket busy.
        let stream = self.handle.address().get().execute();
        stream.try_collect().await.map_err(nl_err("list addresses"))
    }

    /// The prefix length `ip` is configured with on this host, if it is.
    pub async fn address_prefix(&self, ip: Ipv4Addr) -> Result<Option<u8>, Error> {
        Ok(self
            .addresses()
            .await?
            .iter()
            .find(|m| m.header.family == AddressFamily::Inet && address_of(m) == Some(ip.into()))
            .map(|m| m.header.prefix_len))
    }

    /// The first global IPv6 address of the interface that holds `ip`:
    /// what a node announces for IPv6 when `--ip6` is not given.
    pub async fn ipv6_beside(&self, ip: Ipv4Addr) -> Result<Option<Ipv6Addr>, Error> {
        let all = self.addresses().await?;
        let Some(index) = all
            .iter()
            .find(|m| address_of(m) == Some(ip.into()))
            .map(|m| m.header.index)
        else {
            return Ok(None);
        };
        Ok(all
            .iter()
            .filter(|m| m.header.index == index && m.header.family == AddressFamily::Inet6)
            .find_map(|m| match address_of(m) {
                Some(IpAddr::V6(v6)) if is_global(v6) => Some(v6),
                _ => None,
            }))
    }
}

/// Neither unspecified, loopback, link-local nor multicast.
pub fn is_global(ip: Ipv6Addr) -> bool {
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_unicast_link_local() || ip.is_multicast())
}
