//! A thin typed wrapper over rtnetlink: the few link operations tabby
//! needs (routes, as typed values, are in `netlink_routes`).

use std::collections::HashMap;

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo};
use netlink_packet_route::route::{RouteAttribute, RouteHeader};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::Error;
pub use super::route::{Route, RouteTarget};
use super::vxlan::mac_text;

/// Marks every route tabby installs (`proto 77` in `ip route`), so the
/// agent only ever touches its own routes.
pub const RTPROT_TABBY: u8 = 77;

const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const ENODEV: i32 = 19;

/// One link as listed: enough to decide whether tabby made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSummary {
    pub name: String,
    pub index: u32,
    pub veth: bool,
    pub alias: Option<String>,
}

#[derive(Clone)]
pub struct Netlink {
    pub(super) handle: Handle,
    /// One dump at a time: the kernel refuses a second dump on a socket
    /// while one runs (EBUSY), and every task shares this socket.
    dumps: std::sync::Arc<tokio::sync::Mutex<()>>,
}

pub(super) fn nl_err(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let op = op.into();
    move |source| Error::Netlink { op, source }
}

pub(super) fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

pub(super) fn is_missing(err: &rtnetlink::Error) -> bool {
    matches!(errno(err), Some(ENOENT | ESRCH | ENODEV))
}

impl Netlink {
    /// Held while a dump's replies are read (see `dumps`).
    pub(super) async fn dump(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.dumps.lock().await
    }

    /// Opens a netlink socket in the calling thread's network namespace.
    pub fn connect() -> Result<Self, Error> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::Socket)?;
        tokio::spawn(connection);
        Ok(Netlink {
            handle,
            dumps: Default::default(),
        })
    }

    /// Every link's index by name.
    pub async fn links(&self) -> Result<HashMap<String, u32>, Error> {
        Ok(self
            .link_summaries()
            .await?
            .into_iter()
            .map(|l| (l.name, l.index))
            .collect())
    }

    /// Every link with what tells tabby's own apart: its kind and alias.
    pub async fn link_summaries(&self) -> Result<Vec<LinkSummary>, Error> {
        let _dump = self.dump().await;
        let mut stream = self.handle.link().get().execute();
        let mut links = Vec::new();
        while let Some(msg) = stream.try_next().await.map_err(nl_err("list links"))? {
            links.extend(summarise(msg));
        }
        Ok(links)
    }

    /// One link by name, if it exists.
    pub async fn link_summary(&self, name: &str) -> Result<Option<LinkSummary>, Error> {
        Ok(self.link_message(name).await?.and_then(summarise))
    }

    pub(super) async fn link_message(
        &self,
        name: &str,
    ) -> Result<Option<netlink_packet_route::link::LinkMessage>, Error> {
        let mut stream = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match stream.try_next().await {
            Ok(msg) => Ok(msg),
            Err(err) if is_missing(&err) => Ok(None),
            Err(err) => Err(nl_err(format!("look up link {name}"))(err)),
        }
    }

    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, Error> {
        Ok(self.link_message(name).await?.map(|m| m.header.index))
    }

    pub async fn link_mac(&self, name: &str) -> Result<Option<String>, Error> {
        let msg = self.link_message(name).await?;
        Ok(msg.and_then(|m| {
            m.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::Address(bytes) => Some(mac_text(&bytes)),
                _ => None,
            })
        }))
    }

    /// Creates a veth pair with both ends at `mtu`, the host end up.
    /// A veth pair, up; the host end with `host_mac` if given.
    pub async fn create_veth(
        &self,
        host: &str,
        peer: &str,
        mtu: u32,
        host_mac: Option<[u8; 6]>,
    ) -> Result<(), Error> {
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .mtu(mtu)
            .build();
        let mut msg = LinkVeth::new(host, peer)
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)));
        if let Some(mac) = host_mac {
            msg = msg.address(mac.to_vec());
        }
        let msg = msg.up().build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(nl_err(format!("create veth {host}")))
    }

    /// Sets a link's alias (`ip link set NAME alias A`). The kernel ignores
    /// an alias given at creation, so it is a second message.
    pub async fn set_alias(&self, name: &str, alias: &str) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_name(name).alias(alias).build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(nl_err(format!("set alias of {name}")))
    }

    pub async fn set_up(&self, name: &str) -> Result<(), Error> {
        let msg = LinkUnspec::new_with_name(name).up().build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(nl_err(format!("set {name} up")))
    }

    /// Deletes a link; a link that is already gone is not an error.
    pub async fn delete_link(&self, name: &str) -> Result<bool, Error> {
        let Some(index) = self.link_index(name).await? else {
            return Ok(false);
        };
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(true),
            Err(err) if is_missing(&err) => Ok(false),
            Err(err) => Err(nl_err(format!("delete link {name}"))(err)),
        }
    }

    /// This host's address: that of the default-route interface, else the
    /// first global IPv4 address.
    pub async fn host_address(&self) -> Result<Option<Ipv4Addr>, Error> {
        let _dump = self.dump().await;
        let mut default_oif = None;
        let mut stream = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        while let Some(msg) = stream.try_next().await.map_err(nl_err("list routes"))? {
            if msg.header.table == RouteHeader::RT_TABLE_MAIN
                && msg.header.destination_prefix_length == 0
            {
                default_oif = msg.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                });
            }
        }
        let (mut first_global, mut on_default) = (None, None);
        // Read to the end: a dump left half-read keeps the socket busy.
        let mut stream = self.handle.address().get().execute();
        while let Some(msg) = stream.try_next().await.map_err(nl_err("list addresses"))? {
            if msg.header.family != AddressFamily::Inet {
                continue;
            }
            let Some(ip) = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip))
                | AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            }) else {
                continue;
            };
            if ip.is_loopback() || ip.is_link_local() {
                continue;
            }
            if Some(msg.header.index) == default_oif {
                on_default.get_or_insert(ip);
            }
            first_global.get_or_insert(ip);
        }
        Ok(on_default.or(first_global))
    }
}

fn summarise(msg: netlink_packet_route::link::LinkMessage) -> Option<LinkSummary> {
    let (mut name, mut alias, mut veth) = (None, None, false);
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n),
            LinkAttribute::IfAlias(a) => alias = Some(a),
            LinkAttribute::LinkInfo(infos) => {
                veth |= infos.contains(&LinkInfo::Kind(InfoKind::Veth))
            }
            _ => {}
        }
    }
    Some(LinkSummary {
        name: name?,
        index: msg.header.index,
        veth,
        alias,
    })
}
