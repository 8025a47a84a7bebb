//! Cross-host routes (no encapsulation): what one host's routing table
//! must hold so that every container reaches every other by its /32. In
//! direct mode the agent installs them all; in BGP mode BIRD installs the
//! cross-host ones and the agent only its own. Pure: the datastore's view
//! in, the route set out.

pub mod bgp;
pub mod bird;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use crate::dataplane::{Route, RouteTarget};
use crate::model::{Block, Node, Pool};

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
/// - another live host's block: `BLOCK via HOST`;
/// - an address held by a host other than its block's owner (borrowed, or
///   an explicit `--ip` in someone else's block): `/32 via HOLDER` on every
///   host but the holder (who routes it down its veth).
///
/// Routes towards a host that is down are left out, so its addresses fall
/// back to the pool blackhole. In BGP mode every route towards another
/// host is left to BIRD.
pub fn desired_routes(host: &str, view: &ClusterView) -> BTreeSet<Route> {
    let live_ip: HashMap<&str, Ipv4Addr> = view
        .nodes
        .iter()
        .filter(|n| n.hostname != host && view.alive.contains(&n.hostname))
        .filter(|_| view.mode == Mode::Direct)
        .map(|n| (n.hostname.as_str(), n.ip))
        .collect();
    let via = |h: &str| live_ip.get(h).map(|ip| RouteTarget::Via(*ip));

    let mut routes = BTreeSet::new();
    for pool in view.pools {
        routes.insert(Route {
            dst: pool.cidr,
            target: RouteTarget::Blackhole,
        });
    }
    for block in view.blocks {
        let owner = block.affinity.as_deref();
        let target = match owner {
            Some(o) if o == host => Some(RouteTarget::Blackhole),
            Some(o) => via(o),
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
            if let Some(target) = via(&handle.host) {
                routes.insert(Route {
                    dst: ip.into(),
                    target,
                });
            }
        }
    }
    routes
}

#[cfg(test)]
mod tests;
