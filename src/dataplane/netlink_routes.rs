//! Route operations over rtnetlink, for both families: install, delete
//! and list the routes marked as tabby's.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::RouteMessageBuilder;

use super::Error;
use super::netlink::{Netlink, RTPROT_TABBY, errno, is_missing, nl_err};
use super::route::{Route, RouteTarget};

const EEXIST: i32 = 17;
const ENETUNREACH: i32 = 101;

impl Netlink {
    /// Installs a route in the main table, marked as tabby's. `replace`
    /// only when the route already there is tabby's: otherwise the add is
    /// exclusive, and a route someone else put at that destination stays
    /// (`Error::RouteTaken`).
    pub async fn install_route(
        &self,
        route: &Route,
        links: &HashMap<String, u32>,
        replace: bool,
    ) -> Result<(), Error> {
        let msg = self.route_message(route, links)?;
        let request = self.handle.route().add(msg);
        let request = if replace { request.replace() } else { request };
        match request.execute().await {
            Ok(()) => Ok(()),
            Err(err) if errno(&err) == Some(EEXIST) => Err(Error::RouteTaken(route.dst)),
            Err(err) if errno(&err) == Some(ENETUNREACH) => {
                Err(Error::Unreachable(route.to_string()))
            }
            Err(err) => Err(nl_err(format!("add route {route}"))(err)),
        }
    }

    pub async fn delete_route(
        &self,
        route: &Route,
        links: &HashMap<String, u32>,
    ) -> Result<(), Error> {
        let msg = match self.route_message(route, links) {
            Ok(msg) => msg,
            // Its link is gone, and the kernel took the route with it.
            Err(Error::LinkMissing(_)) => return Ok(()),
            Err(err) => return Err(err),
        };
        match self.handle.route().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(err) if is_missing(&err) => Ok(()),
            Err(err) => Err(nl_err(format!("delete route {route}"))(err)),
        }
    }

    fn route_message(
        &self,
        route: &Route,
        links: &HashMap<String, u32>,
    ) -> Result<RouteMessage, Error> {
        let invalid = invalid_route(route);
        let builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(route.dst.addr(), route.dst.prefix_len())
            .map_err(&invalid)?
            .protocol(RouteProtocol::from(RTPROT_TABBY));
        let builder = match &route.target {
            RouteTarget::Dev(dev) => {
                let index = *links
                    .get(dev)
                    .ok_or_else(|| Error::LinkMissing(dev.clone()))?;
                builder.output_interface(index).scope(RouteScope::Link)
            }
            RouteTarget::Via(gw) => builder.gateway(*gw).map_err(&invalid)?,
            RouteTarget::Tunnel(gw) => {
                let index = *links
                    .get(super::VXLAN_DEVICE)
                    .ok_or_else(|| Error::LinkMissing(super::VXLAN_DEVICE.into()))?;
                builder
                    .output_interface(index)
                    .gateway(IpAddr::V4(*gw))
                    .map_err(&invalid)?
                    .onlink()
            }
            RouteTarget::Blackhole => builder.kind(RouteType::BlackHole),
        };
        Ok(builder.build())
    }

    /// The routes of the main table, of both families, that carry tabby's
    /// protocol mark.
    pub async fn tabby_routes(&self) -> Result<Vec<Route>, Error> {
        let names: HashMap<u32, String> = self
            .links()
            .await?
            .into_iter()
            .map(|(n, i)| (i, n))
            .collect();
        let mut routes = Vec::new();
        let v4 = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let v6 = RouteMessageBuilder::<Ipv6Addr>::new().build();
        for request in [v4, v6] {
            routes.extend(self.tabby_routes_of(request, &names).await?);
        }
        Ok(routes)
    }

    async fn tabby_routes_of(
        &self,
        request: RouteMessage,
        names: &HashMap<u32, String>,
    ) -> Result<Vec<Route>, Error> {
        let _dump = self.dump().await;
        let mut stream = self.handle.route().get(request).execute();
        let mut routes = Vec::new();
        while let Some(msg) = stream.try_next().await.map_err(nl_err("list routes"))? {
            if msg.header.table != RouteHeader::RT_TABLE_MAIN
                || msg.header.protocol != RouteProtocol::from(RTPROT_TABBY)
            {
                continue;
            }
            if let Some(route) = parse_route(&msg, names) {
                routes.push(route);
            }
        }
        Ok(routes)
    }

    /// Whether the main table has any route that covers `ip`.
    pub async fn has_route_to(&self, ip: Ipv4Addr) -> Result<bool, Error> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(ip, 32)
            .build();
        match self.handle.route().get(msg).execute().try_next().await {
            Ok(found) => Ok(found.is_some()),
            Err(err) if matches!(errno(&err), Some(101 | 113 | 22)) => Ok(false),
            Err(err) => Err(nl_err(format!("route get {ip}"))(err)),
        }
    }
}

/// The error of a route the builder refuses (mixed families).
fn invalid_route<E: std::fmt::Display>(route: &Route) -> impl Fn(E) -> Error + '_ {
    move |e| Error::InvalidRoute {
        route: route.to_string(),
        reason: e.to_string(),
    }
}

fn route_address(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn parse_route(msg: &RouteMessage, names: &HashMap<u32, String>) -> Option<Route> {
    let addr = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(address) => route_address(address),
        _ => None,
    })?;
    let dst = IpNet::new(addr, msg.header.destination_prefix_length).ok()?;
    let target = if msg.header.kind == RouteType::BlackHole {
        RouteTarget::Blackhole
    } else {
        let oif = msg.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        });
        let dev = oif.and_then(|i| names.get(&i));
        let gateway = msg.attributes.iter().find_map(|a| match a {
            RouteAttribute::Gateway(address) => route_address(address),
            _ => None,
        });
        match gateway {
            Some(IpAddr::V4(gw)) if dev.is_some_and(|d| d == super::VXLAN_DEVICE) => {
                RouteTarget::Tunnel(gw)
            }
            Some(gw) => RouteTarget::Via(gw),
            None => RouteTarget::Dev(dev?.clone()),
        }
    };
    Some(Route { dst, target })
}
