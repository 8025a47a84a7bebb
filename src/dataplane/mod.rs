//! The kernel side of one host: veth pairs for endpoints, their host
//! routes, and the sysctls that make Calico's 169.254.1.1 gateway trick
//! work. `reconcile` converges the routing table to a desired set.

mod addresses;
#[cfg(test)]
pub mod fake;
mod kernel;
pub mod netlink;
mod netlink_routes;
mod ownership;
mod reconcile;
mod route;
pub mod sysctl;
mod tunnel;
pub mod vxlan;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{debug, info};

pub use addresses::is_global;
pub use kernel::{Kernel, ProcSysctl, Sysctl};
pub use netlink::{LinkSummary, Netlink, Route, RouteTarget};
pub use ownership::{is_tabby_link, owner_alias, proven_owner, recorded_links};
pub use reconcile::RouteDiff;
pub use vxlan::{VXLAN_DEVICE, VXLAN_OVERHEAD, VXLAN_PORT, VxlanSpec};

/// The gateway a container's first tabby interface is given. It exists
/// nowhere: the host end of each veth answers ARP for it (proxy ARP).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The IPv6 gateway of every tabby interface: the link-local address the
/// host end of a veth takes from its fixed MAC `ee:ee:ee:ee:ee:ee` (as in
/// Calico). Link-local routes are per interface, so one address serves
/// all of a container's interfaces.
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);
/// Calico's MAC for the host end of every dual-stack veth: its IPv6
/// link-local address, the containers' gateway, is then `GATEWAY6`.
pub const HOST_VETH_MAC: [u8; 6] = [0xee; 6];
/// How many tabby interfaces one container can have: the N-th is given
/// the gateway 169.254.1.N, because a container cannot route one address
/// through two interfaces (Docker's "file exists").
pub const MAX_INTERFACES: u8 = 254;

/// The virtual gateway of a container's `n`-th tabby interface (from 1).
pub fn gateway(n: u8) -> Ipv4Addr {
    let [a, b, c, _] = GATEWAY.octets();
    Ipv4Addr::new(a, b, c, n)
}

/// Whether `ip` is one of the virtual gateways.
pub fn is_gateway(ip: Ipv4Addr) -> bool {
    let [a, b, c, d] = ip.octets();
    [a, b, c] == GATEWAY.octets()[..3] && (1..=MAX_INTERFACES).contains(&d)
}

/// The host route that makes proxy ARP answer for a gateway when no other
/// route covers it (a host with no default route).
pub fn gateway_route(gateway: Ipv4Addr) -> Route {
    Route {
        dst: IpAddr::V4(gateway).into(),
        target: RouteTarget::Dev("lo".into()),
    }
}
/// Host-side veths all start with this (the firewall matches them:
/// `tabby+`). It is not how the agent recognises its links: see
/// `ownership`.
pub const VETH_PREFIX: &str = "tabby";
const PEER_PREFIX: &str = "tbtmp";
const IFNAMSIZ: usize = 15;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("netlink: cannot {op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("cannot set {}: {source}", path.display())]
    Sysctl {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("link {0} does not exist")]
    LinkMissing(String),
    #[error("link {0} exists and was not made by tabby: it is left alone")]
    Foreign(String),
    #[error("a route to {0} that tabby did not make is in the way: it is left alone")]
    RouteTaken(ipnet::IpNet),
    #[error("{0}: its next hop is on no network of this host")]
    Unreachable(String),
    #[error("invalid route {route}: {reason}")]
    InvalidRoute { route: String, reason: String },
}

/// Host-side veth name for an endpoint: fits IFNAMSIZ.
pub fn host_veth_name(endpoint_id: &str) -> String {
    let take = IFNAMSIZ - VETH_PREFIX.len();
    format!(
        "{VETH_PREFIX}{}",
        crate::validate::prefix(endpoint_id, take)
    )
}

/// Temporary name of the container end, until Docker moves it into the
/// container and renames it.
pub fn peer_veth_name(endpoint_id: &str) -> String {
    let take = IFNAMSIZ - PEER_PREFIX.len();
    format!(
        "{PEER_PREFIX}{}",
        crate::validate::prefix(endpoint_id, take)
    )
}

/// The route that sends an endpoint's address down its veth.
pub fn endpoint_route(ip: impl Into<IpAddr>, veth: &str) -> Route {
    Route {
        dst: ip.into().into(),
        target: RouteTarget::Dev(veth.to_string()),
    }
}

#[derive(Clone)]
pub struct Dataplane {
    netlink: Arc<dyn Kernel>,
    sysctl: Arc<dyn Sysctl>,
    mtu: u32,
}

/// What Join tells Docker about a new interface.
pub struct Attached {
    pub peer: String,
    pub mac: Option<String>,
}

impl Dataplane {
    /// The host's kernel, through netlink and /proc/sys.
    pub fn new(mtu: u32) -> Result<Self, Error> {
        Ok(Self::with(
            Arc::new(Netlink::connect()?),
            Arc::new(ProcSysctl),
            mtu,
        ))
    }

    /// Over any kernel: the fakes in unit tests.
    pub fn with(netlink: Arc<dyn Kernel>, sysctl: Arc<dyn Sysctl>, mtu: u32) -> Self {
        Dataplane {
            netlink,
            sysctl,
            mtu,
        }
    }

    /// The veths' MTU, which the tunnel's is derived from.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    pub fn netlink(&self) -> &dyn Kernel {
        self.netlink.as_ref()
    }

    pub fn sysctl(&self) -> &dyn Sysctl {
        self.sysctl.as_ref()
    }

    /// Host-wide prerequisites: writable sysctls, forwarding on.
    pub fn prepare_host(&self) -> Result<(), Error> {
        self.sysctl.ensure_writable()?;
        self.sysctl.enable_ip_forwarding()
    }

    /// Creates the endpoint's veth pair, marks both ends as tabby's,
    /// configures the host end and routes the endpoint's address down it.
    /// A leftover pair of an earlier attempt is replaced; a link of that
    /// name that tabby did not make is refused.
    /// `encapsulated`: the endpoint's pool may send its traffic through
    /// the tunnel, so its veth gets the tunnel's MTU and nothing it sends
    /// needs fragmenting.
    /// A dual-stack endpoint (`ip6`) also gets its /128 routed down the
    /// veth, whose host end takes the fixed MAC its IPv6 gateway address
    /// comes from.
    pub async fn attach(
        &self,
        endpoint_id: &str,
        ip: Ipv4Addr,
        ip6: Option<Ipv6Addr>,
        encapsulated: bool,
    ) -> Result<Attached, Error> {
        let mtu = if encapsulated {
            self.mtu.saturating_sub(vxlan::VXLAN_OVERHEAD)
        } else {
            self.mtu
        };
        let host = host_veth_name(endpoint_id);
        let peer = peer_veth_name(endpoint_id);
        if self.delete_own_link(&host).await? {
            debug!(veth = %host, "replaced a leftover veth");
        }
        self.delete_own_link(&peer).await?;
        let host_mac = ip6.map(|_| HOST_VETH_MAC);
        self.netlink
            .create_veth(&host, &peer, mtu, host_mac)
            .await?;
        if let Err(err) = self.mark_pair(endpoint_id, &host, &peer).await {
            // Unmarked, the pair would be nobody's to remove later.
            self.netlink.delete_link(&host).await?;
            return Err(err);
        }
        self.sysctl
            .configure_endpoint_interface(&host, ip6.is_some())?;
        let links = self.netlink.links().await?;
        let addresses = std::iter::once(IpAddr::V4(ip)).chain(ip6.map(IpAddr::V6));
        for route in addresses.map(|a| endpoint_route(a, &host)) {
            match self.netlink.install_route(&route, &links, false).await {
                // A stale route of tabby's own at that address is replaced.
                Err(Error::RouteTaken(dst)) if self.has_tabby_route(dst).await? => {
                    self.netlink.install_route(&route, &links, true).await?
                }
                other => other?,
            }
        }
        let mac = self.netlink.link_mac(&peer).await?;
        info!(veth = %host, %ip, "attached endpoint");
        Ok(Attached { peer, mac })
    }

    async fn has_tabby_route(&self, dst: ipnet::IpNet) -> Result<bool, Error> {
        Ok(self
            .netlink
            .tabby_routes()
            .await?
            .iter()
            .any(|r| r.dst == dst))
    }

    async fn mark_pair(&self, endpoint_id: &str, host: &str, peer: &str) -> Result<(), Error> {
        let alias = owner_alias(endpoint_id);
        self.netlink.set_alias(host, &alias).await?;
        self.netlink.set_alias(peer, &alias).await
    }

    /// Removes an endpoint's veth pair; the kernel drops its route with it.
    /// `veth` comes from an endpoint record or a proven link.
    pub async fn detach(&self, veth: &str) -> Result<(), Error> {
        if self.delete_own_link(veth).await? {
            info!(veth, "detached endpoint");
        }
        Ok(())
    }
}
