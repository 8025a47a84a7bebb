//! Routes as typed values, of either family: where each sends traffic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// Where a route sends traffic.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RouteTarget {
    /// Directly out of a link (`dev X scope link`).
    Dev(String),
    /// Through a gateway (`via A`), of the route's family.
    Via(IpAddr),
    /// Through the VXLAN tunnel to a peer host (`via A dev tabby.vxlan
    /// onlink`): the peer's neighbour entry names its MAC, its FDB entry
    /// its address.
    Tunnel(Ipv4Addr),
    Blackhole,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Route {
    pub dst: IpNet,
    pub target: RouteTarget,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            RouteTarget::Dev(dev) => write!(f, "{} dev {dev}", self.dst),
            RouteTarget::Via(gw) => write!(f, "{} via {gw}", self.dst),
            RouteTarget::Tunnel(gw) => {
                write!(
                    f,
                    "{} via {gw} dev {} onlink",
                    self.dst,
                    super::VXLAN_DEVICE
                )
            }
            RouteTarget::Blackhole => write!(f, "blackhole {}", self.dst),
        }
    }
}
