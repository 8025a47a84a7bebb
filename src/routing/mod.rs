//! Cross-host routes (no encapsulation): what one host's routing table
//! must hold so that every container reaches every other by its /32. In
//! direct mode the agent installs them all; in BGP mode BIRD installs the
//! cross-host ones and the agent only its own. Pure: the datastore's view
//! in, the route set out.

pub mod bgp;
pub mod bird;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use crate::dataplane::{Route, RouteTarget};
use crate::model::{Block, Node, Pool, VxlanMode};

/// Who installs the routes towards other hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The agent: `BLOCK via HOST`, every host on one L2 segment.
    Direct,
    /// BIRD, from what BGP peers announce.
    Bgp,
}

/// The cluster as the datastore says it is.
pub struct ClusterView<'a> {
    pub pools: &'a [Pool],
    pub blocks: &'a [Block],
    pub nodes: &'a [Node],
    /// Hosts whose agent holds its liveness lease.
    pub alive: &'a HashSet<String>,
    pub mode: Mode,
}

/// Routes `host` needs towards other hosts' containers, plus blackholes:
///
/// - every pool: blackhole (nothing addressed to a pool ever leaves by the
///   default route; more specific routes win over it);
/// - this host's blocks: blackhole (unallocated addresses are dropped);
/// - another live host's block: `BLOCK via HOST`, or through the VXLAN
///   tunnel when the block's pool says so for that host (see `path`);
/// - an address held by a host other than its block's owner (borrowed, or
///   an explicit `--ip` in someone else's block): `/32 via HOLDER` on every
///   host but the holder (who routes it down its veth), tunnelled alike.
///
/// IPv6 pools and blocks get the same routes, via each host's IPv6
/// address (`path6`).
///
/// Routes towards a host that is down are left out, so its addresses fall
/// back to the pool blackhole. In BGP mode every route towards another
/// host is left to BIRD, but those through the tunnel.
pub fn desired_routes(host: &str, view: &ClusterView) -> BTreeSet<Route> {
    let me = view.nodes.iter().find(|n| n.hostname == host);
    let live: HashMap<&str, &Node> = view
        .nodes
        .iter()
        .filter(|n| n.hostname != host && view.alive.contains(&n.hostname))
        .map(|n| (n.hostname.as_str(), n))
        .collect();
    let mode_of = |block: &Block| {
        view.pools
            .iter()
            .find(|p| p.cidr == block.pool)
            .map_or(VxlanMode::Never, |p| p.vxlan)
    };
    // In BGP mode BIRD routes what is routed as it is; the tunnel is
    // still the agent's (Calico's VXLAN with BGP: the routers between
    // subnets do not peer, so a learned next hop there is no use).
    let to = |peer: &str, mode, v6: bool| {
        let peer = live.get(peer)?;
        let target = match v6 {
            false => path(me, peer, mode)?,
            true => path6(me, peer)?,
        };
        (view.mode == Mode::Direct || matches!(target, RouteTarget::Tunnel(_))).then_some(target)
    };

    let mut routes = BTreeSet::new();
    for pool in view.pools {
        routes.insert(Route {
            dst: pool.cidr,
            target: RouteTarget::Blackhole,
        });
    }
    for block in view.blocks {
        let owner = block.affinity.as_deref();
        let mode = mode_of(block);
        let v6 = block.cidr.addr().is_ipv6();
        let target = match owner {
            Some(o) if o == host => Some(RouteTarget::Blackhole),
            Some(o) => to(o, mode, v6),
            None => None,
        };
        if let Some(target) = target {
            routes.insert(Route {
                dst: block.cidr,
                target,
            });
        }
        for (ip, handle) in block.allocated() {
            if Some(handle.host.as_str()) == owner || handle.host == host {
                continue;
            }
            if let Some(target) = to(&handle.host, mode, v6) {
                routes.insert(Route {
                    dst: ip.into(),
                    target,
                });
            }
        }
    }
    routes
}

/// How traffic of a pool in `mode` reaches `peer`: routed as it is, or
/// through the tunnel to the peer's address. None when neither can work:
/// a peer on another subnet routed as it is, or one to tunnel to that
/// has no tunnel (an agent from before VXLAN). The pool's blackhole then
/// drops the traffic, as it would be dropped anyway.
fn path(me: Option<&Node>, peer: &Node, mode: VxlanMode) -> Option<RouteTarget> {
    let tunnel = match mode {
        VxlanMode::Never => false,
        VxlanMode::Always => true,
        VxlanMode::CrossSubnet => !same_subnet(me, peer),
    };
    if !tunnel {
        // Routed as it is, a peer is a next hop only on this host's own
        // subnet: beyond it a router would have to know the pools (BGP).
        return same_subnet(me, peer).then_some(RouteTarget::Via(peer.ip.into()));
    }
    peer.vxlan_mac
        .as_ref()
        .map(|_| RouteTarget::Tunnel(peer.ip))
}

/// How IPv6 traffic reaches `peer`: via its IPv6 address, on this host's
/// subnet (the IPv4 one stands for both: hosts share their L2 segment in
/// both families). IPv6 is never tunnelled; a peer with no IPv6 address
/// gets no route, and the pool's blackhole drops what is sent its way.
fn path6(me: Option<&Node>, peer: &Node) -> Option<RouteTarget> {
    let ip6 = peer.ip6?;
    same_subnet(me, peer).then_some(RouteTarget::Via(ip6.into()))
}

/// Whether `peer` is on this host's subnet; with the subnet unknown,
/// every peer is (routing as it is, today's behaviour).
fn same_subnet(me: Option<&Node>, peer: &Node) -> bool {
    me.and_then(|m| m.subnet)
        .is_none_or(|subnet| subnet.contains(&peer.ip))
}

/// This host's tunnel: None when no pool encapsulates (no device), else
/// the peers `routes` (this host's `desired_routes` in `view`) tunnel
/// to, by address, with their MACs.
pub fn desired_tunnel(
    view: &ClusterView,
    routes: &BTreeSet<Route>,
) -> Option<BTreeMap<Ipv4Addr, [u8; 6]>> {
    if view.pools.iter().all(|p| p.vxlan.is_never()) {
        return None;
    }
    let tunnelled: BTreeSet<Ipv4Addr> = routes
        .iter()
        .filter_map(|r| match r.target {
            RouteTarget::Tunnel(ip) => Some(ip),
            _ => None,
        })
        .collect();
    Some(
        view.nodes
            .iter()
            .filter(|n| tunnelled.contains(&n.ip))
            .filter_map(|n| {
                let mac = crate::model::unicast_mac(n.vxlan_mac.as_deref()?).ok()?;
                Some((n.ip, mac))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ipv6;
