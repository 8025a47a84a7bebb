//! A container's tabby interfaces. Each gets its own virtual gateway
//! (169.254.1.N) and routes its network's pool through it, so a container
//! on several tabby networks (or on Docker's bridge too) reaches each
//! network's peers through that network's interface, whichever interface
//! Docker gives the default route.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::names::{Updated, update_endpoint};
use super::{Driver, Error};
use crate::dataplane::{self, MAX_INTERFACES, Route};
use crate::model::Endpoint;

/// A route Join hands Docker to install in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    pub dst: Ipv4Net,
    /// `None`: on-link (Docker's "connected" route type).
    pub via: Option<Ipv4Addr>,
}

/// What one interface of a container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfacePlan {
    pub gateway: Ipv4Addr,
    pub routes: Vec<StaticRoute>,
}

/// Another tabby interface of the same container: its gateway and the
/// pool of its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sibling {
    pub gateway: Ipv4Addr,
    pub pool: Ipv4Net,
}

/// The gateway and routes of an interface on `pool`, beside `siblings`.
/// A gateway this interface already had (Docker repeating a Join) is
/// kept. The pool is routed unless a sibling routes it already: two
/// networks on one pool share the first interface's route, as the kernel
/// holds one route per destination. `None` once every gateway is taken.
pub fn plan(
    pool: Ipv4Net,
    previous: Option<Ipv4Addr>,
    siblings: &[Sibling],
) -> Option<InterfacePlan> {
    let taken: BTreeSet<Ipv4Addr> = siblings.iter().map(|s| s.gateway).collect();
    let gateway = previous
        .filter(|g| dataplane::is_gateway(*g) && !taken.contains(g))
        .or_else(|| {
            (1..=MAX_INTERFACES)
                .map(dataplane::gateway)
                .find(|g| !taken.contains(g))
        })?;
    let mut routes = vec![StaticRoute {
        dst: gateway.into(),
        via: None,
    }];
    if !siblings.iter().any(|s| s.pool == pool) {
        routes.push(StaticRoute {
            dst: pool,
            via: Some(gateway),
        });
    }
    Some(InterfacePlan { gateway, routes })
}

impl Driver {
    /// Picks the interface's gateway and records it, with the container's
    /// sandbox, before the kernel is touched: a resync then keeps the
    /// gateway's host route, and the container's next Join sees it. One
    /// plan at a time, so two Joins of one container never pick alike.
    pub(super) async fn plan_interface(
        &self,
        endpoint: &Endpoint,
        pool: Ipv4Net,
        sandbox: &str,
    ) -> Result<InterfacePlan, Error> {
        let sandbox = match sandbox {
            "" => None,
            key => {
                crate::validate::sandbox_key(key)?;
                Some(key.to_string())
            }
        };
        let _one_at_a_time = self.interfaces.lock().await;
        let siblings = match &sandbox {
            Some(key) => self.siblings(&endpoint.id, key).await?,
            None => Vec::new(),
        };
        let previous = endpoint.gateway.filter(|_| endpoint.sandbox == sandbox);
        let plan = plan(pool, previous, &siblings).ok_or_else(|| {
            Error::Invalid(format!(
                "a container can have at most {MAX_INTERFACES} tabby interfaces"
            ))
        })?;
        if endpoint.sandbox != sandbox || endpoint.gateway != Some(plan.gateway) {
            self.record_interface(&endpoint.id, sandbox, plan.gateway)
                .await?;
        }
        Ok(plan)
    }

    /// This host's other endpoints in the same sandbox.
    async fn siblings(&self, endpoint_id: &str, sandbox: &str) -> Result<Vec<Sibling>, Error> {
        let mut out = Vec::new();
        for ep in self.store.host_endpoints(self.host()).await? {
            if ep.id == endpoint_id || ep.sandbox.as_deref() != Some(sandbox) {
                continue;
            }
            let (Some(gateway), Some(network)) =
                (ep.gateway, self.store.network(&ep.network_id).await?)
            else {
                continue;
            };
            out.push(Sibling {
                gateway,
                pool: network.pool,
            });
        }
        Ok(out)
    }

    /// The lo routes that make proxy ARP answer for the gateways of this
    /// host's endpoints (the first one always), each unless another route
    /// covers it already (a default route) or it is ours.
    pub(super) async fn gateway_routes(&self, endpoints: &[Endpoint]) -> Result<Vec<Route>, Error> {
        let gateways: BTreeSet<Ipv4Addr> = endpoints
            .iter()
            .filter_map(|e| e.gateway)
            .chain([dataplane::GATEWAY])
            .collect();
        let netlink = self.dataplane.netlink();
        let ours = netlink.tabby_routes().await?;
        let mut routes = Vec::new();
        for gateway in gateways {
            let route = dataplane::gateway_route(gateway);
            if ours.contains(&route) || !netlink.has_route_to(gateway).await? {
                routes.push(route);
            }
        }
        Ok(routes)
    }

    /// Join's share of the above: Docker routes through the gateway as
    /// soon as Join answers, so the host must already answer for it. The
    /// caller holds the kernel lock.
    pub(super) async fn ensure_gateway_route(&self, gateway: Ipv4Addr) -> Result<(), Error> {
        let netlink = self.dataplane.netlink();
        if netlink.has_route_to(gateway).await? {
            return Ok(());
        }
        let links = netlink.links().await?;
        match netlink
            .install_route(&dataplane::gateway_route(gateway), &links, false)
            .await
        {
            Ok(()) | Err(dataplane::Error::RouteTaken(_)) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn record_interface(
        &self,
        endpoint_id: &str,
        sandbox: Option<String>,
        gateway: Ipv4Addr,
    ) -> Result<(), Error> {
        let outcome = update_endpoint(&self.store, self.host(), endpoint_id, |e| {
            e.sandbox = sandbox.clone();
            e.gateway = Some(gateway);
        })
        .await?;
        match outcome {
            Updated::Applied => Ok(()),
            Updated::Gone => Err(Error::UnknownEndpoint(endpoint_id.to_string())),
            Updated::Contended => Err(Error::Invalid(format!(
                "endpoint {endpoint_id} kept changing while its interface was recorded"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn sibling(n: u8, pool: &str) -> Sibling {
        Sibling {
            gateway: dataplane::gateway(n),
            pool: net(pool),
        }
    }

    #[test]
    fn a_first_interface_gets_the_first_gateway_and_routes_its_pool() {
        let plan = plan(net("198.18.100.0/24"), None, &[]).unwrap();
        assert_eq!(plan.gateway, dataplane::GATEWAY);
        assert_eq!(
            plan.routes,
            vec![
                StaticRoute {
                    dst: net("169.254.1.1/32"),
                    via: None
                },
                StaticRoute {
                    dst: net("198.18.100.0/24"),
                    via: Some(dataplane::GATEWAY)
                },
            ]
        );
    }

    #[test]
    fn each_interface_of_a_container_gets_a_gateway_of_its_own() {
        let siblings = [sibling(1, "198.18.100.0/24"), sibling(3, "198.18.102.0/24")];
        let plan = plan(net("198.18.101.0/24"), None, &siblings).unwrap();
        assert_eq!(plan.gateway, dataplane::gateway(2));
        assert_eq!(plan.routes[1].via, Some(dataplane::gateway(2)));
    }

    #[test]
    fn a_pool_another_interface_routes_is_not_routed_twice() {
        let plan = plan(
            net("198.18.100.0/24"),
            None,
            &[sibling(1, "198.18.100.0/24")],
        )
        .unwrap();
        assert_eq!(plan.gateway, dataplane::gateway(2));
        assert_eq!(plan.routes.len(), 1, "only the gateway's own route");
    }

    #[test]
    fn a_repeated_join_keeps_its_gateway_unless_a_sibling_took_it() {
        let kept = plan(net("198.18.100.0/24"), Some(dataplane::gateway(5)), &[]).unwrap();
        assert_eq!(kept.gateway, dataplane::gateway(5));
        let taken = plan(
            net("198.18.100.0/24"),
            Some(dataplane::gateway(1)),
            &[sibling(1, "198.18.101.0/24")],
        )
        .unwrap();
        assert_eq!(taken.gateway, dataplane::gateway(2));
    }

    #[test]
    fn gateways_run_out_after_the_last_one() {
        let siblings: Vec<Sibling> = (1..=MAX_INTERFACES)
            .map(|n| sibling(n, "198.18.100.0/24"))
            .collect();
        assert_eq!(plan(net("198.18.101.0/24"), None, &siblings), None);
    }
}
