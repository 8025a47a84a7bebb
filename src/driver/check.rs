//! `tabby ipam check`: compares what this host holds in the datastore and
//! the kernel with what Docker says is live, and optionally repairs it.
//! The agent runs it periodically. Docker unreachable means nothing is
//! judged by liveness: no state is dropped on a guess.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{Driver, Error};
use crate::ipam::check::{Findings, Inventory, compare};
use crate::model::{Endpoint, Handle};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CheckReport {
    /// The host checked.
    #[serde(default)]
    pub host: String,
    pub findings: Findings,
    /// What was repaired, one line each.
    pub repaired: Vec<String>,
    /// What could not be repaired, and why.
    pub unrepaired: Vec<String>,
}

impl Driver {
    /// Endpoint ID -> address of every endpoint Docker has on this host's
    /// tabby networks; None if Docker cannot be asked about every one of
    /// them. A network Docker answers 404 for is unknown, not empty: its
    /// endpoints may be live under an ID we do not know, so then nothing
    /// is judged by liveness. Returns the networks Docker did not know.
    async fn live_endpoints(&self) -> (Option<HashMap<String, Vec<IpAddr>>>, Vec<String>) {
        let Some(docker) = self.docker.as_ref() else {
            return (None, Vec::new());
        };
        let mut live = HashMap::new();
        let mut unknown = Vec::new();
        let networks = match self.store.networks().await {
            Ok(networks) => networks,
            Err(err) => {
                warn!(error = %err, "cannot list networks");
                return (None, unknown);
            }
        };
        for network in networks.iter().filter(|n| n.host == self.host()) {
            match docker.network_endpoints(&network.id).await {
                Ok(Some(endpoints)) => live.extend(endpoints),
                Ok(None) => unknown.push(network.id.clone()),
                Err(err) => {
                    warn!(error = %err, "cannot ask Docker which endpoints are live");
                    return (None, unknown);
                }
            }
        }
        if !unknown.is_empty() {
            warn!(networks = ?unknown, "Docker does not know these networks: liveness unknown, nothing judged by it");
            return (None, unknown);
        }
        (Some(live), unknown)
    }

    /// The check as the CLI asks it of this agent: only for this host.
    pub async fn check_for(
        &self,
        host: &str,
        grace: chrono::Duration,
        repair: bool,
    ) -> Result<CheckReport, Error> {
        if host != self.host() {
            return Err(Error::Invalid(format!(
                "this agent is {}, not {host}: run the check on {host}",
                self.host()
            )));
        }
        let report = self.check(grace, repair).await?;
        for line in &report.repaired {
            tracing::info!("ipam check (asked by the CLI) repaired: {line}");
        }
        Ok(report)
    }

    pub async fn check(&self, grace: chrono::Duration, repair: bool) -> Result<CheckReport, Error> {
        let (live, unknown_networks) = self.live_endpoints().await;
        let mut holders: HashMap<IpAddr, Handle> = HashMap::new();
        for block in self.store.blocks().await? {
            for (ip, handle) in block.value.allocated() {
                holders.insert(ip, handle.clone());
            }
        }
        let allocations: Vec<(IpAddr, Handle)> = holders
            .iter()
            .filter(|(_, h)| h.host == self.host())
            .map(|(ip, h)| (*ip, h.clone()))
            .collect();
        let endpoints = self.store.host_endpoints(self.host()).await?;
        let recorded = crate::dataplane::recorded_links(endpoints.iter().map(|e| e.id.as_str()));
        let links = self.dataplane.tabby_links(&recorded, false).await?;
        let routes = self.dataplane.netlink().tabby_routes().await?;
        let findings = compare(&Inventory {
            host: self.host(),
            allocations: &allocations,
            endpoints: &endpoints,
            live: live.as_ref(),
            holders: &holders,
            links: &links,
            routes: &routes,
            grace,
            now: Utc::now(),
        });
        let mut report = CheckReport {
            host: self.host().to_string(),
            findings: Findings {
                unknown_networks,
                ..findings
            },
            ..CheckReport::default()
        };
        if repair && !report.findings.is_clean() {
            self.repair(&mut report).await?;
        }
        Ok(report)
    }

    async fn repair(&self, report: &mut CheckReport) -> Result<(), Error> {
        let findings = report.findings.clone();
        for endpoint in &findings.stale_endpoints {
            self.drop_published_ports(&endpoint.id).await?;
            if self
                .store
                .delete_endpoint(self.host(), &endpoint.id)
                .await?
            {
                report.repaired.push(format!(
                    "removed endpoint {} ({}) that Docker no longer has",
                    crate::ipam::short_id(&endpoint.id),
                    endpoint.ip
                ));
            }
        }
        for (ip, handle) in &findings.leaked_allocations {
            if self.ipam.release_if_held_by(*ip, handle).await? {
                report.repaired.push(format!(
                    "released {ip} held by {} for no live endpoint",
                    crate::ipam::describe(handle)
                ));
            }
        }
        for endpoint in &findings.unallocated_endpoints {
            match self.reclaim(endpoint).await {
                Ok(()) => report.repaired.push(format!(
                    "re-allocated {} to its live endpoint {}",
                    endpoint.ip,
                    crate::ipam::short_id(&endpoint.id)
                )),
                Err(err) => report.unrepaired.push(format!(
                    "endpoint {} uses {}: {err}",
                    crate::ipam::short_id(&endpoint.id),
                    endpoint.ip
                )),
            }
        }
        if !findings.stray_links.is_empty() || !findings.stray_routes.is_empty() {
            let resync = self.resync().await?;
            for link in resync.links_removed {
                report
                    .repaired
                    .push(format!("removed link {link} of no endpoint"));
            }
            for route in resync.routes_removed {
                report
                    .repaired
                    .push(format!("removed route to {} of no endpoint", route.dst));
            }
        }
        Ok(())
    }

    /// Gives a live endpoint its address back in IPAM.
    async fn reclaim(&self, endpoint: &Endpoint) -> Result<(), Error> {
        let network = self
            .store
            .network(&endpoint.network_id)
            .await?
            .ok_or_else(|| Error::UnknownNetwork(endpoint.network_id.clone()))?;
        let pool = self.ipam.pool(&network.pool.into()).await?;
        let handle = Handle {
            host: self.host().to_string(),
            network: Some(endpoint.network_id.clone()),
            endpoint: Some(endpoint.id.clone()),
            container: endpoint.container.clone(),
            time: Utc::now(),
        };
        self.ipam
            .allocate(&pool, Some(endpoint.ip.into()), handle)
            .await?;
        Ok(())
    }
}
