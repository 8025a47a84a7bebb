//! An in-memory host for unit tests: links and routes that behave as the
//! kernel's do for what tabby asks (a route over a missing link is
//! refused, a foreign route is in the way), and a log of every call.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Mutex;

use async_trait::async_trait;
use ipnet::IpNet;

use super::vxlan::{Mac, TunnelEntries, VXLAN_DEVICE, VxlanLink, VxlanSpec};
use super::{Error, Kernel, LinkSummary, Route, RouteTarget, Sysctl};

#[derive(Default)]
struct Host {
    links: BTreeMap<String, LinkSummary>,
    /// Destination -> (route, made by tabby).
    routes: BTreeMap<IpNet, (Route, bool)>,
    next_index: u32,
    /// `tabby.vxlan` as made (None for a foreign link of that name).
    vxlan: Option<VxlanLink>,
    tunnel: TunnelEntries,
}

pub struct FakeKernel {
    host: Mutex<Host>,
    calls: Mutex<Vec<String>>,
}

/// A host with its loopback and one uplink, as every real one has.
impl Default for FakeKernel {
    fn default() -> Self {
        let kernel = FakeKernel {
            host: Mutex::default(),
            calls: Mutex::default(),
        };
        kernel.add_foreign_link("lo", false, None);
        kernel.add_foreign_link("eth0", false, None);
        kernel
    }
}

impl FakeKernel {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    /// Every call that changed something, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn clear_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// A link someone else made.
    pub fn add_foreign_link(&self, name: &str, veth: bool, alias: Option<&str>) {
        let mut host = self.host.lock().unwrap();
        host.next_index += 1;
        let link = LinkSummary {
            name: name.into(),
            index: host.next_index,
            veth,
            alias: alias.map(str::to_string),
        };
        host.links.insert(name.into(), link);
    }

    /// A route someone else made.
    pub fn add_foreign_route(&self, route: Route) {
        let mut host = self.host.lock().unwrap();
        host.routes.insert(route.dst, (route, false));
    }

    pub fn link_names(&self) -> Vec<String> {
        self.host.lock().unwrap().links.keys().cloned().collect()
    }

    pub fn alias(&self, name: &str) -> Option<String> {
        self.host.lock().unwrap().links.get(name)?.alias.clone()
    }

    /// Every route, tabby's and others'.
    pub fn routes(&self) -> Vec<Route> {
        let host = self.host.lock().unwrap();
        host.routes.values().map(|(r, _)| r.clone()).collect()
    }
}

#[async_trait]
impl Kernel for FakeKernel {
    async fn links(&self) -> Result<HashMap<String, u32>, Error> {
        let host = self.host.lock().unwrap();
        Ok(host
            .links
            .values()
            .map(|l| (l.name.clone(), l.index))
            .collect())
    }

    async fn link_summaries(&self) -> Result<Vec<LinkSummary>, Error> {
        Ok(self.host.lock().unwrap().links.values().cloned().collect())
    }

    async fn link_summary(&self, name: &str) -> Result<Option<LinkSummary>, Error> {
        Ok(self.host.lock().unwrap().links.get(name).cloned())
    }

    async fn link_mac(&self, name: &str) -> Result<Option<String>, Error> {
        let host = self.host.lock().unwrap();
        Ok(host
            .links
            .get(name)
            .map(|l| format!("ee:00:00:00:00:{:02x}", l.index % 256)))
    }

    async fn create_veth(
        &self,
        host_end: &str,
        peer: &str,
        mtu: u32,
        host_mac: Option<[u8; 6]>,
    ) -> Result<(), Error> {
        let mac = host_mac.map_or(String::new(), |m| {
            format!(" mac {}", super::vxlan::mac_text(&m))
        });
        self.record(format!("create veth {host_end} {peer} mtu {mtu}{mac}"));
        let mut host = self.host.lock().unwrap();
        for name in [host_end, peer] {
            if host.links.contains_key(name) {
                return Err(Error::Foreign(name.into()));
            }
        }
        for name in [host_end, peer] {
            host.next_index += 1;
            let link = LinkSummary {
                name: name.into(),
                index: host.next_index,
                veth: true,
                alias: None,
            };
            host.links.insert(name.into(), link);
        }
        Ok(())
    }

    async fn set_alias(&self, name: &str, alias: &str) -> Result<(), Error> {
        self.record(format!("set alias {name} {alias}"));
        let mut host = self.host.lock().unwrap();
        let link = host
            .links
            .get_mut(name)
            .ok_or_else(|| Error::LinkMissing(name.into()))?;
        link.alias = Some(alias.into());
        Ok(())
    }

    async fn delete_link(&self, name: &str) -> Result<bool, Error> {
        self.record(format!("delete link {name}"));
        let mut host = self.host.lock().unwrap();
        if host.links.remove(name).is_none() {
            return Ok(false);
        }
        if name == VXLAN_DEVICE {
            host.vxlan = None;
            host.tunnel = TunnelEntries::default();
            host.routes
                .retain(|_, (r, _)| !matches!(r.target, RouteTarget::Tunnel(_)));
        }
        // As the kernel does: the routes over the link go with it.
        host.routes
            .retain(|_, (r, _)| r.target != RouteTarget::Dev(name.into()));
        Ok(true)
    }

    async fn install_route(
        &self,
        route: &Route,
        links: &HashMap<String, u32>,
        replace: bool,
    ) -> Result<(), Error> {
        self.record(format!("install route {route}"));
        let dev = match &route.target {
            RouteTarget::Dev(dev) => Some(dev.as_str()),
            RouteTarget::Tunnel(_) => Some(VXLAN_DEVICE),
            _ => None,
        };
        if let Some(dev) = dev
            && !links.contains_key(dev)
        {
            return Err(Error::LinkMissing(dev.into()));
        }
        let mut host = self.host.lock().unwrap();
        if !replace && host.routes.contains_key(&route.dst) {
            return Err(Error::RouteTaken(route.dst));
        }
        host.routes.insert(route.dst, (route.clone(), true));
        Ok(())
    }

    async fn delete_route(&self, route: &Route, _: &HashMap<String, u32>) -> Result<(), Error> {
        self.record(format!("delete route {route}"));
        let mut host = self.host.lock().unwrap();
        if host.routes.get(&route.dst).is_some_and(|(_, ours)| *ours) {
            host.routes.remove(&route.dst);
        }
        Ok(())
    }

    async fn tabby_routes(&self) -> Result<Vec<Route>, Error> {
        let host = self.host.lock().unwrap();
        Ok(host
            .routes
            .values()
            .filter(|(_, ours)| *ours)
            .map(|(r, _)| r.clone())
            .collect())
    }

    async fn has_route_to(&self, ip: Ipv4Addr) -> Result<bool, Error> {
        let host = self.host.lock().unwrap();
        Ok(host
            .routes
            .keys()
            .any(|dst| dst.contains(&std::net::IpAddr::V4(ip))))
    }

    async fn host_address(&self) -> Result<Option<Ipv4Addr>, Error> {
        Ok(Some(Ipv4Addr::new(198, 18, 0, 11)))
    }

    async fn address_prefix(&self, _: Ipv4Addr) -> Result<Option<u8>, Error> {
        Ok(Some(24))
    }
    async fn ipv6_beside(&self, _: Ipv4Addr) -> Result<Option<std::net::Ipv6Addr>, Error> {
        Ok(None)
    }

    async fn vxlan_link(&self) -> Result<Option<VxlanLink>, Error> {
        let host = self.host.lock().unwrap();
        let Some(link) = host.links.get(VXLAN_DEVICE) else {
            return Ok(None);
        };
        Ok(Some(host.vxlan.clone().unwrap_or(VxlanLink {
            index: link.index,
            ours: false,
            up: true,
            spec: None,
            vni: None,
            learning: None,
        })))
    }

    async fn create_vxlan(&self, spec: &VxlanSpec) -> Result<(), Error> {
        self.record(format!("create {VXLAN_DEVICE} mtu {}", spec.mtu));
        let mut host = self.host.lock().unwrap();
        if host.links.contains_key(VXLAN_DEVICE) {
            return Err(Error::Foreign(VXLAN_DEVICE.into()));
        }
        host.next_index += 1;
        let index = host.next_index;
        host.links.insert(
            VXLAN_DEVICE.into(),
            LinkSummary {
                name: VXLAN_DEVICE.into(),
                index,
                veth: false,
                alias: Some(super::vxlan::VXLAN_ALIAS.into()),
            },
        );
        host.vxlan = Some(VxlanLink {
            index,
            ours: true,
            up: true,
            spec: Some(spec.clone()),
            vni: Some(super::vxlan::VXLAN_VNI),
            learning: Some(false),
        });
        Ok(())
    }

    async fn tunnel_entries(&self, _: u32) -> Result<TunnelEntries, Error> {
        Ok(self.host.lock().unwrap().tunnel.clone())
    }

    async fn put_tunnel_peer(&self, _: u32, ip: Ipv4Addr, mac: &Mac) -> Result<(), Error> {
        self.record(format!("put tunnel peer {ip}"));
        let mut host = self.host.lock().unwrap();
        host.tunnel.neighbours.insert(ip, *mac);
        host.tunnel.fdb.insert(*mac, ip);
        Ok(())
    }

    async fn delete_tunnel_neighbour(&self, _: u32, ip: Ipv4Addr) -> Result<(), Error> {
        self.record(format!("delete tunnel neighbour {ip}"));
        self.host.lock().unwrap().tunnel.neighbours.remove(&ip);
        Ok(())
    }

    async fn delete_tunnel_fdb(&self, _: u32, mac: &Mac, _: Ipv4Addr) -> Result<(), Error> {
        self.record(format!("delete tunnel fdb {}", super::vxlan::mac_text(mac)));
        self.host.lock().unwrap().tunnel.fdb.remove(mac);
        Ok(())
    }
}

/// Records which interfaces were configured; touches no /proc.
#[derive(Default)]
pub struct FakeSysctl {
    configured: Mutex<Vec<String>>,
}

impl FakeSysctl {
    pub fn configured(&self) -> Vec<String> {
        self.configured.lock().unwrap().clone()
    }
}

impl Sysctl for FakeSysctl {
    fn ensure_writable(&self) -> Result<(), Error> {
        Ok(())
    }

    fn enable_ip_forwarding(&self) -> Result<(), Error> {
        Ok(())
    }

    fn configure_endpoint_interface(&self, ifname: &str, ipv6: bool) -> Result<(), Error> {
        let v6 = if ipv6 { " ipv6" } else { "" };
        self.configured
            .lock()
            .unwrap()
            .push(format!("{ifname}{v6}"));
        Ok(())
    }
}
