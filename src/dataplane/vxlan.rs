//! The VXLAN tunnel device over netlink: `tabby.vxlan`, made with
//! learning off and no remote or group, so it sends only where its FDB
//! says; each peer host is one neighbour entry (its tunnel address to its
//! MAC) and one FDB entry (that MAC to its host address).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::LinkVxlan;

use super::Error;
use super::netlink::{Netlink, is_missing, nl_err};

pub const VXLAN_DEVICE: &str = "tabby.vxlan";
/// Calico's defaults.
pub const VXLAN_VNI: u32 = 4096;
pub const VXLAN_PORT: u16 = 4789;
/// The alias that proves tabby made the device (see ownership.rs).
pub const VXLAN_ALIAS: &str = "tabby:vxlan";
/// Outer IPv4 (20), UDP (8) and VXLAN (8) headers and the inner Ethernet
/// header (14): what the tunnel's MTU gives up against its underlay's.
pub const VXLAN_OVERHEAD: u32 = 50;

pub type Mac = [u8; 6];

/// The device as tabby wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    pub local: Ipv4Addr,
    pub mac: Mac,
    pub mtu: u32,
    pub port: u16,
}

/// The device as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanLink {
    pub index: u32,
    /// Carries tabby's alias and is a VXLAN device.
    pub ours: bool,
    pub up: bool,
    /// The settings read back; None where the kernel did not say.
    pub spec: Option<VxlanSpec>,
    pub vni: Option<u32>,
    pub learning: Option<bool>,
}

/// The device's neighbour (address to MAC) and FDB (MAC to address)
/// entries that name a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelEntries {
    pub neighbours: BTreeMap<Ipv4Addr, Mac>,
    pub fdb: BTreeMap<Mac, Ipv4Addr>,
}

/// `0e:66:fb:97:74:56`, as `ip link` shows it; any length, since a
/// link's hardware address need not be a MAC's six bytes.
pub fn mac_text(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn read_link(msg: netlink_packet_route::link::LinkMessage) -> VxlanLink {
    let (mut kind, mut infos, mut alias, mut mac, mut mtu) = (None, Vec::new(), None, None, None);
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfAlias(a) => alias = Some(a),
            LinkAttribute::Address(a) => mac = Mac::try_from(a.as_slice()).ok(),
            LinkAttribute::Mtu(m) => mtu = Some(m),
            LinkAttribute::LinkInfo(info) => {
                for i in info {
                    match i {
                        LinkInfo::Kind(k) => kind = Some(k),
                        LinkInfo::Data(InfoData::Vxlan(v)) => infos = v,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let vni = infos.iter().find_map(|i| match i {
        InfoVxlan::Id(v) => Some(*v),
        _ => None,
    });
    let port = infos.iter().find_map(|i| match i {
        InfoVxlan::Port(p) => Some(*p),
        _ => None,
    });
    let local = infos.iter().find_map(|i| match i {
        InfoVxlan::Local(ip) => Some(*ip),
        _ => None,
    });
    let learning = infos.iter().find_map(|i| match i {
        InfoVxlan::Learning(l) => Some(*l),
        _ => None,
    });
    let spec = match (local, mac, mtu, port) {
        (Some(local), Some(mac), Some(mtu), Some(port)) => Some(VxlanSpec {
            local,
            mac,
            mtu,
            port,
        }),
        _ => None,
    };
    VxlanLink {
        index: msg.header.index,
        ours: kind == Some(InfoKind::Vxlan) && alias.as_deref() == Some(VXLAN_ALIAS),
        up: msg.header.flags.contains(LinkFlags::Up),
        spec,
        vni,
        learning,
    }
}

impl Netlink {
    /// `tabby.vxlan`, if a link of that name exists (ours or not).
    pub async fn vxlan_link(&self) -> Result<Option<VxlanLink>, Error> {
        Ok(self.link_message(VXLAN_DEVICE).await?.map(read_link))
    }

    /// Makes the device, marks it as tabby's and brings it up.
    pub async fn create_vxlan(&self, spec: &VxlanSpec) -> Result<(), Error> {
        let msg = LinkVxlan::new(VXLAN_DEVICE, VXLAN_VNI)
            .port(spec.port)
            .local(spec.local)
            .learning(false)
            // As Docker's overlay: no outer UDP checksum to compute per
            // packet (the inner packet carries its own).
            .udp_csum(false)
            .mtu(spec.mtu)
            .address(spec.mac.to_vec())
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(nl_err(format!("create {VXLAN_DEVICE}")))?;
        self.set_alias(VXLAN_DEVICE, VXLAN_ALIAS).await?;
        self.set_up(VXLAN_DEVICE).await
    }

    /// The device's entries that name a peer: permanent IPv4 neighbours
    /// with a MAC, and FDB entries with a destination address.
    pub async fn tunnel_entries(&self, index: u32) -> Result<TunnelEntries, Error> {
        let _dump = self.dump().await;
        let mut entries = TunnelEntries::default();
        let mut stream = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
            .execute();
        while let Some(msg) = stream.try_next().await.map_err(nl_err("list neighbours"))? {
            if msg.header.ifindex == index
                && let (Some(ip), Some(mac)) = (destination(&msg), lladdr(&msg))
            {
                entries.neighbours.insert(ip, mac);
            }
        }
        let mut stream = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(nl_err("list FDB entries"))?
        {
            if msg.header.ifindex == index
                && let (Some(ip), Some(mac)) = (destination(&msg), lladdr(&msg))
            {
                entries.fdb.insert(mac, ip);
            }
        }
        Ok(entries)
    }

    /// A peer's neighbour and FDB entries, replacing what was there.
    pub async fn put_tunnel_peer(&self, index: u32, ip: Ipv4Addr, mac: &Mac) -> Result<(), Error> {
        let what = || format!("add tunnel peer {ip} ({})", mac_text(mac));
        self.handle
            .neighbours()
            .add(index, IpAddr::V4(ip))
            .link_layer_address(mac)
            .replace()
            .execute()
            .await
            .map_err(nl_err(what()))?;
        self.handle
            .neighbours()
            .add_bridge(index, mac)
            .destination(IpAddr::V4(ip))
            .flags(NeighbourFlags::Own)
            .replace()
            .execute()
            .await
            .map_err(nl_err(what()))
    }

    pub async fn delete_tunnel_neighbour(&self, index: u32, ip: Ipv4Addr) -> Result<(), Error> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        self.delete_neighbour(msg, format!("delete tunnel neighbour {ip}"))
            .await
    }

    pub async fn delete_tunnel_fdb(
        &self,
        index: u32,
        mac: &Mac,
        ip: Ipv4Addr,
    ) -> Result<(), Error> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Permanent;
        msg.header.flags = NeighbourFlags::Own;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        self.delete_neighbour(msg, format!("delete FDB entry {}", mac_text(mac)))
            .await
    }

    async fn delete_neighbour(&self, msg: NeighbourMessage, what: String) -> Result<(), Error> {
        match self.handle.neighbours().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(err) if is_missing(&err) => Ok(()),
            Err(err) => Err(nl_err(what)(err)),
        }
    }
}

/// An entry's IPv4 destination. FDB entries are of the bridge family,
/// whose addresses the parser leaves as bytes.
fn destination(msg: &NeighbourMessage) -> Option<Ipv4Addr> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
            <[u8; 4]>::try_from(bytes.as_slice())
                .ok()
                .map(Ipv4Addr::from)
        }
        _ => None,
    })
}

fn lladdr(msg: &NeighbourMessage) -> Option<Mac> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(a) => Mac::try_from(a.as_slice()).ok(),
        _ => None,
    })
}

/// A stable MAC for a host's tunnel device: locally administered and
/// unicast, from the hostname (FNV-1a), so a device made again after a
/// restart or a repair has the MAC its peers already hold.
pub fn mac_for(hostname: &str) -> Mac {
    let b = crate::hash::fnv1a(hostname.as_bytes()).to_be_bytes();
    [0x0e, b[0], b[1], b[2], b[3], b[4]]
}

#[cfg(test)]
mod tests {
    use super::{mac_for, mac_text};

    #[test]
    fn mac_for_a_hostname_never_changes() {
        // Peers hold this MAC in their FDB across our restarts and upgrades.
        assert_eq!(mac_text(&mac_for("host-a")), "0e:66:fb:97:74:56");
    }
}
