//! The host's side effects behind traits, as youki puts its syscalls and
//! netlink client: the real ones talk to the kernel (`Netlink`,
//! `ProcSysctl`), the fakes in `fake` record what was asked and keep an
//! in-memory host, so the driver's decisions are tested without root.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use async_trait::async_trait;

use super::netlink::{LinkSummary, Netlink, Route};
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
    /// A veth pair with both ends at `mtu`, the host end up.
    async fn create_veth(&self, host: &str, peer: &str, mtu: u32) -> Result<(), Error>;
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
    async fn create_veth(&self, host: &str, peer: &str, mtu: u32) -> Result<(), Error> {
        Netlink::create_veth(self, host, peer, mtu).await
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
}

/// The sysctls tabby sets.
pub trait Sysctl: Send + Sync {
    /// Makes /proc/sys writable where a managed plugin finds it read-only.
    fn ensure_writable(&self) -> Result<(), Error>;
    fn enable_ip_forwarding(&self) -> Result<(), Error>;
    /// Proxy ARP, forwarding and the rest an endpoint's host veth needs.
    fn configure_endpoint_interface(&self, ifname: &str) -> Result<(), Error>;
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
    fn configure_endpoint_interface(&self, ifname: &str) -> Result<(), Error> {
        sysctl::configure_endpoint_interface(ifname)
    }
}
