//! The host's side effects behind traits, as youki puts its syscalls and
//! netlink client: the real ones talk to the kernel (`Netlink`,
//! `ProcSysctl`), the fakes in `fake` record what was asked and keep an
//! in-memory host, so the driver's decisions are tested without root.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use async_trait::async_trait;

use super::netlink::{LinkSummary, Netlink, Route};
use super::vxlan::{Mac, TunnelEntries, VxlanLink, VxlanSpec};
use super::{Error, sysctl};

/// Links and routes, as tabby uses them.
#[async_trait]
pub trait Kernel: Send + Sync {
    /// Every link's index by name.
    async fn links(&self) -> Result<HashMap<String, u32>, Error>;
    /// Every link with what tells tabby's own apart: its kind and alias.
    async fn link_summaries(&self) -> Result<Vec<LinkSummary>, Error>;
    async fn link_summary(&self, name: &str) -> Result<Option<LinkSummary>, Error>;
    async fn link_mac(&self, name: &str) -> Result<Option<String>, Error>;
    /// A veth pair with both ends at `mtu`, up; the host end with
    /// `host_mac` if given.
    async fn create_veth(
        &self,
        host: &str,
        peer: &str,
        mtu: u32,
        host_mac: Option<[u8; 6]>,
    ) -> Result<(), Error>;
    async fn set_alias(&self, name: &str, alias: &str) -> Result<(), Error>;
    /// Deletes a link; one already gone is `false`, not an error.
    async fn delete_link(&self, name: &str) -> Result<bool, Error>;
    /// Installs a route marked as tabby's; without `replace`, a route
    /// already at that destination is `RouteTaken`.
    async fn install_route(
        &self,
        route: &Route,
        links: &HashMap<String, u32>,
        replace: bool,
    ) -> Result<(), Error>;
    async fn delete_route(&self, route: &Route, links: &HashMap<String, u32>) -> Result<(), Error>;
    /// The routes marked as tabby's.
    async fn tabby_routes(&self) -> Result<Vec<Route>, Error>;
    /// Whether any route covers `ip`.
    async fn has_route_to(&self, ip: Ipv4Addr) -> Result<bool, Error>;
    /// The address of the interface holding the default route, if any.
    async fn host_address(&self) -> Result<Option<Ipv4Addr>, Error>;
    /// The prefix length `ip` is configured with on this host, if it is.
    async fn address_prefix(&self, ip: Ipv4Addr) -> Result<Option<u8>, Error>;
    /// The first global IPv6 address of the interface that holds `ip`.
    async fn ipv6_beside(&self, ip: Ipv4Addr) -> Result<Option<Ipv6Addr>, Error>;
    /// `tabby.vxlan`, if a link of that name exists (tabby's or not).
    async fn vxlan_link(&self) -> Result<Option<VxlanLink>, Error>;
    /// Makes `tabby.vxlan` as `spec`, marked as tabby's, up.
    async fn create_vxlan(&self, spec: &VxlanSpec) -> Result<(), Error>;
    async fn tunnel_entries(&self, index: u32) -> Result<TunnelEntries, Error>;
    /// A peer's neighbour and FDB entries, replacing older ones.
    async fn put_tunnel_peer(&self, index: u32, ip: Ipv4Addr, mac: &Mac) -> Result<(), Error>;
    async fn delete_tunnel_neighbour(&self, index: u32, ip: Ipv4Addr) -> Result<(), Error>;
    async fn delete_tunnel_fdb(&self, index: u32, mac: &Mac, ip: Ipv4Addr) -> Result<(), Error>;
}

#[async_trait]
impl Kernel for Netlink {
    async fn links(&self) -> Result<HashMap<String, u32>, Error> {
        Netlink::links(self).await
    }
    async fn link_summaries(&self) -> Result<Vec<LinkSummary>, Error> {
        Netlink::link_summaries(self).await
    }
    async fn link_summary(&self, name: &str) -> Result<Option<LinkSummary>, Error> {
        Netlink::link_summary(self, name).await
    }
    async fn link_mac(&self, name: &str) -> Result<Option<String>, Error> {
        Netlink::link_mac(self, name).await
    }
    async fn create_veth(
        &self,
        host: &str,
        peer: &str,
        mtu: u32,
        host_mac: Option<[u8; 6]>,
    ) -> Result<(), Error> {
        Netlink::create_veth(self, host, peer, mtu, host_mac).await
    }
    async fn set_alias(&self, name: &str, alias: &str) -> Result<(), Error> {
        Netlink::set_alias(self, name, alias).await
    }
    async fn delete_link(&self, name: &str) -> Result<bool, Error> {
        Netlink::delete_link(self, name).await
    }
    async fn install_route(
        &self,
        route: &Route,
        links: &HashMap<String, u32>,
        replace: bool,
    ) -> Result<(), Error> {
        Netlink::install_route(self, route, links, replace).await
    }
    async fn delete_route(&self, route: &Route, links: &HashMap<String, u32>) -> Result<(), Error> {
        Netlink::delete_route(self, route, links).await
    }
    async fn tabby_routes(&self) -> Result<Vec<Route>, Error> {
        Netlink::tabby_routes(self).await
    }
    async fn has_route_to(&self, ip: Ipv4Addr) -> Result<bool, Error> {
        Netlink::has_route_to(self, ip).await
    }
    async fn host_address(&self) -> Result<Option<Ipv4Addr>, Error> {
        Netlink::host_address(self).await
    }
    async fn address_prefix(&self, ip: Ipv4Addr) -> Result<Option<u8>, Error> {
        Netlink::address_prefix(self, ip).await
    }
    async fn ipv6_beside(&self, ip: Ipv4Addr) -> Result<Option<Ipv6Addr>, Error> {
        Netlink::ipv6_beside(self, ip).await
    }
    async fn vxlan_link(&self) -> Result<Option<VxlanLink>, Error> {
        Netlink::vxlan_link(self).await
    }
    async fn create_vxlan(&self, spec: &VxlanSpec) -> Result<(), Error> {
        Netlink::create_vxlan(self, spec).await
    }
    async fn tunnel_entries(&self, index: u32) -> Result<TunnelEntries, Error> {
        Netlink::tunnel_entries(self, index).await
    }
    async fn put_tunnel_peer(&self, index: u32, ip: Ipv4Addr, mac: &Mac) -> Result<(), Error> {
        Netlink::put_tunnel_peer(self, index, ip, mac).await
    }
    async fn delete_tunnel_neighbour(&self, index: u32, ip: Ipv4Addr) -> Result<(), Error> {
        Netlink::delete_tunnel_neighbour(self, index, ip).await
    }
    async fn delete_tunnel_fdb(&self, index: u32, mac: &Mac, ip: Ipv4Addr) -> Result<(), Error> {
        Netlink::delete_tunnel_fdb(self, index, mac, ip).await
    }
}

/// The sysctls tabby sets.
pub trait Sysctl: Send + Sync {
    /// Makes /proc/sys writable where a managed plugin finds it read-only.
    fn ensure_writable(&self) -> Result<(), Error>;
    fn enable_ip_forwarding(&self) -> Result<(), Error>;
    /// Proxy ARP, forwarding and the rest an endpoint's host veth needs;
    /// with `ipv6` (a dual-stack endpoint) IPv6 on it, else off.
    fn configure_endpoint_interface(&self, ifname: &str, ipv6: bool) -> Result<(), Error>;
}

/// The real settings under /proc/sys.
pub struct ProcSysctl;

impl Sysctl for ProcSysctl {
    fn ensure_writable(&self) -> Result<(), Error> {
        sysctl::ensure_writable()
    }
    fn enable_ip_forwarding(&self) -> Result<(), Error> {
        sysctl::enable_ip_forwarding()
    }
    fn configure_endpoint_interface(&self, ifname: &str, ipv6: bool) -> Result<(), Error> {
        sysctl::configure_endpoint_interface(ifname, ipv6)
    }
}
