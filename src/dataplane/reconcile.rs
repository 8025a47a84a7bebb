//! Converges the tabby-owned part of the routing table to a desired set.

use std::collections::{BTreeSet, HashSet};

use ipnet::IpNet;
use tracing::{info, warn};

use super::{Dataplane, Error, Route};

/// What one convergence pass changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RouteDiff {
    pub added: Vec<Route>,
    pub removed: Vec<Route>,
}

impl RouteDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Pure part of convergence: what to add (or replace) and what to remove.
/// A destination that stays desired with a new target is replaced in place
/// rather than removed, so traffic to it never sees a gap.
pub fn diff(current: &BTreeSet<Route>, desired: &BTreeSet<Route>) -> RouteDiff {
    let desired_dsts: HashSet<IpNet> = desired.iter().map(|r| r.dst).collect();
    RouteDiff {
        added: desired.difference(current).cloned().collect(),
        removed: current
            .iter()
            .filter(|r| !desired_dsts.contains(&r.dst))
            .cloned()
            .collect(),
    }
}

impl Dataplane {
    /// Makes the routes tabby owns equal `desired`. Applying the same set
    /// twice changes nothing the second time. Routes over links that do not
    /// exist (yet) are skipped with a warning rather than failing the rest.
    pub async fn converge_routes(&self, desired: &BTreeSet<Route>) -> Result<RouteDiff, Error> {
        let current: BTreeSet<Route> = self.netlink.tabby_routes().await?.into_iter().collect();
        let mut plan = diff(&current, desired);
        let links = self.netlink.links().await?;
        for route in &plan.removed {
            self.netlink.delete_route(route, &links).await?;
            info!(%route, "removed route");
        }
        let mut added = Vec::new();
        let ours: HashSet<IpNet> = current.iter().map(|r| r.dst).collect();
        for route in plan.added.drain(..) {
            let replace = ours.contains(&route.dst);
            match self.netlink.install_route(&route, &links, replace).await {
                Ok(()) => {
                    info!(%route, "installed route");
                    added.push(route);
                }
                Err(Error::LinkMissing(link)) => warn!(%route, link, "link missing, route skipped"),
                Err(Error::RouteTaken(_)) => {
                    warn!(%route, "a route tabby did not make is in the way, route skipped")
                }
                // One unreachable next hop must not hold up every other
                // route (a peer on another subnet, routed as it is).
                Err(err @ Error::Unreachable(_)) => warn!(%err, "route skipped"),
                Err(err) => return Err(err),
            }
        }
        plan.added = added;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::RouteTarget;

    fn r(dst: &str, target: RouteTarget) -> Route {
        Route {
            dst: dst.parse().unwrap(),
            target,
        }
    }

    #[test]
    fn same_set_twice_is_a_no_op_and_changes_replace_in_place() {
        let a = r("198.18.64.1/32", RouteTarget::Dev("tabbyaaa".into()));
        let b = r(
            "198.18.64.64/26",
            RouteTarget::Via("198.18.0.12".parse().unwrap()),
        );
        let b2 = r(
            "198.18.64.64/26",
            RouteTarget::Via("198.18.0.13".parse().unwrap()),
        );
        let c = r("198.18.64.128/26", RouteTarget::Blackhole);
        let current: BTreeSet<_> = [a.clone(), b.clone(), c.clone()].into();
        assert!(diff(&current, &current).is_empty());
        let desired: BTreeSet<_> = [a.clone(), b2.clone()].into();
        let d = diff(&current, &desired);
        assert_eq!(d.added, vec![b2]);
        assert_eq!(d.removed, vec![c], "b is replaced, not removed");
    }
}
