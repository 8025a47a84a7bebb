//! Converges this host's kernel state to the datastore: at agent start,
//! and whenever asked. Idempotent: a second pass changes nothing.

use std::collections::{BTreeSet, HashSet};

use tracing::{info, warn};

use super::{Driver, Error};
use crate::dataplane::{self, Route, RouteTarget, endpoint_route, peer_veth_name, sysctl};
use crate::model::EndpointState;

#[derive(Debug, Default)]
pub struct ResyncReport {
    pub links_removed: Vec<String>,
    pub routes_added: Vec<Route>,
    pub routes_removed: Vec<Route>,
}

impl Driver {
    /// Installs tabby's firewall base and host prerequisites.
    pub async fn prepare_host(&self) -> Result<(), Error> {
        self.dataplane.prepare_host()?;
        self.firewall.apply(&crate::policy::base_ruleset()).await?;
        Ok(())
    }

    pub async fn resync(&self) -> Result<ResyncReport, Error> {
        let _kernel = self.kernel.lock().await;
        let endpoints = self.store.host_endpoints(self.host()).await?;
        let links: HashSet<String> = self.dataplane.tabby_links().await?.into_iter().collect();

        let mut report = ResyncReport::default();
        let mut keep = HashSet::new();
        let mut desired = BTreeSet::new();
        for ep in endpoints
            .iter()
            .filter(|e| e.state == EndpointState::Joined)
        {
            keep.insert(ep.veth.clone());
            keep.insert(peer_veth_name(&ep.id));
            if links.contains(&ep.veth) {
                sysctl::configure_endpoint_interface(&ep.veth)?;
                desired.insert(endpoint_route(ep.ip, &ep.veth));
            } else {
                warn!(endpoint = %ep.id, veth = %ep.veth, "joined endpoint has no veth");
            }
        }
        for link in links.difference(&keep) {
            self.dataplane.detach(link).await?;
            report.links_removed.push(link.clone());
        }
        if let Some(route) = self.gateway_route().await? {
            desired.insert(route);
        }
        let diff = self.dataplane.converge_routes(&desired).await?;
        report.routes_added = diff.added;
        report.routes_removed = diff.removed;
        info!(
            links_removed = report.links_removed.len(),
            routes_added = report.routes_added.len(),
            routes_removed = report.routes_removed.len(),
            "resync done"
        );
        Ok(report)
    }

    /// The lo route that makes proxy ARP answer for 169.254.1.1, if this
    /// host has no other route covering it (or it is already ours).
    async fn gateway_route(&self) -> Result<Option<Route>, Error> {
        let ours = Route {
            dst: dataplane::GATEWAY.into(),
            target: RouteTarget::Dev("lo".into()),
        };
        let netlink = self.dataplane.netlink();
        if netlink.tabby_routes().await?.contains(&ours)
            || !netlink.has_route_to(dataplane::GATEWAY).await?
        {
            return Ok(Some(ours));
        }
        Ok(None)
    }
}
