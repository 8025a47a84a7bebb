//! Converges this host's kernel state to the datastore: at agent start,
//! then whenever the datastore changes. Idempotent: a second pass with the
//! same data changes nothing, so routes never flap.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::Utc;

use tracing::{debug, info, warn};

use super::{Driver, Error};
use crate::dataplane::{self, Route, endpoint_route, host_veth_name, peer_veth_name};
use crate::model::{EndpointState, Node, NodeStatus, Pool};
use crate::routing::{ClusterView, desired_routes};

#[derive(Debug, Default)]
pub struct ResyncReport {
    pub links_removed: Vec<String>,
    pub routes_added: Vec<Route>,
    pub routes_removed: Vec<Route>,
    pub routes: usize,
}

impl ResyncReport {
    /// Whether the pass changed anything in the kernel.
    pub fn changed(&self) -> bool {
        !self.links_removed.is_empty()
            || !self.routes_added.is_empty()
            || !self.routes_removed.is_empty()
    }
}

impl Driver {
    /// Host prerequisites (forwarding on).
    pub async fn prepare_host(&self) -> Result<(), Error> {
        self.dataplane.prepare_host()?;
        Ok(())
    }

    /// Programs the firewall for the datastore's endpoints and profiles.
    /// Cheap when nothing changed: the backend skips what it applied last.
    pub async fn converge_policy(&self) -> Result<(), Error> {
        self.converge_policy_with(None).await
    }

    /// `converge_policy`, given the pools and nodes when the pass has
    /// already read them.
    async fn converge_policy_with(&self, read: Option<(&[Pool], &[Node])>) -> Result<(), Error> {
        // Held from the reads to the apply: a pass that read before another
        // wrote (a Join's endpoint) must not program its older view after
        // that other pass, which would take the new endpoint's chains away
        // until the next pass.
        let mut recorded = self.policy.lock().await;
        // The IDs first: an endpoint recorded between the two reads is then
        // in the listing and never taken for a quarantined one.
        // Profiles and exposures are read beside them: each read is a
        // round trip to etcd, and Join waits for this pass.
        let endpoints = async {
            let ids = self.store.host_endpoint_ids(self.host()).await?;
            Ok::<_, crate::store::Error>((ids, self.store.endpoints().await?))
        };
        let (listed, profiles, exposures, peers) = tokio::join!(
            endpoints,
            self.store.profiles_checked(),
            self.store.exposures(),
            self.vxlan_guard(read)
        );
        let ((ids, all), (profiles, invalid), exposures) = (listed?, profiles?, exposures?);
        let peers = peers?;
        let local: Vec<_> = all
            .iter()
            .filter(|e| e.host == self.host())
            .cloned()
            .collect();
        // Recorded here but left out of the listing: its record fails its
        // checks, so its veth stays (resync keeps it) with no traffic.
        let listed: HashSet<&str> = local.iter().map(|e| e.id.as_str()).collect();
        let quarantined: Vec<String> = ids
            .iter()
            .filter(|id| !listed.contains(id.as_str()))
            .map(|id| dataplane::host_veth_name(id))
            .collect();
        let input = crate::policy::PolicyInput {
            local: &local,
            all: &all,
            profiles: &profiles,
            exposures: &exposures,
            quarantined: &quarantined,
            vxlan_peers: peers.as_deref(),
        };
        let metrics = crate::metrics::get();
        metrics.local_endpoints.set(local.len() as i64);
        metrics.cluster_endpoints.set(all.len() as i64);
        let started = std::time::Instant::now();
        let applied =
            crate::policy::contain::apply_contained(self.firewall.as_ref(), &input, &invalid).await;
        metrics
            .firewall_apply
            .observe(started.elapsed().as_secs_f64());
        let failures = match applied {
            Ok((failures, programmed)) => {
                metrics.health.firewall_applied();
                metrics.programmed(&programmed);
                failures
            }
            Err(err) => {
                metrics.firewall_errors.inc();
                return Err(err.into());
            }
        };
        // Written only when it changes: a pass that changes nothing writes
        // nothing to etcd.
        if recorded.as_ref() != Some(&failures) {
            match self.store.put_policy_status(self.host(), &failures).await {
                Ok(()) => *recorded = Some(failures),
                Err(err) => warn!(error = %err, "cannot record profile failures"),
            }
        }
        Ok(())
    }

    pub async fn resync(&self) -> Result<ResyncReport, Error> {
        let _one_at_a_time = self.resyncs.lock().await;
        // One read of pools and nodes feeds both the firewall's VXLAN guard
        // set and the routes: one round trip less, and the two agree.
        // Listings leave out records that fail their checks.
        let (pools, nodes) = tokio::join!(self.ipam.pools(), self.store.nodes());
        let (pools, nodes) = (pools?, nodes?);
        // Policy first: a new endpoint's chains must exist before traffic.
        self.converge_policy_with(Some((&pools, &nodes))).await?;
        let started = std::time::Instant::now();
        let report = self.sync_routes(&pools, &nodes).await;
        let metrics = crate::metrics::get();
        metrics.route_sync.observe(started.elapsed().as_secs_f64());
        if let Ok(report) = &report {
            metrics.routes.set(report.routes as i64);
            metrics.health.routes_synced();
        }
        report
    }

    /// The routes down an endpoint's veth (its /32, and its /128 when
    /// dual-stack), its veth configured on the way; none without a veth.
    fn endpoint_routes(
        &self,
        ep: &crate::model::Endpoint,
        links: &HashSet<String>,
    ) -> Result<Vec<Route>, Error> {
        if !links.contains(&ep.veth) {
            if ep.state == EndpointState::Joined {
                debug!(endpoint = %ep.id, veth = %ep.veth, "joined endpoint has no veth");
            }
            return Ok(Vec::new());
        }
        self.dataplane
            .sysctl()
            .configure_endpoint_interface(&ep.veth, ep.ip6.is_some())?;
        let v6 = ep.ip6.map(|ip6| endpoint_route(ip6, &ep.veth));
        Ok(std::iter::once(endpoint_route(ep.ip, &ep.veth))
            .chain(v6)
            .collect())
    }

    async fn sync_routes(&self, pools: &[Pool], nodes: &[Node]) -> Result<ResyncReport, Error> {
        let blocks: Vec<_> = self
            .store
            .blocks()
            .await?
            .into_iter()
            .map(|b| b.value)
            .collect();
        let alive: HashSet<String> = self.store.alive_hosts().await?.into_iter().collect();
        crate::metrics::cluster::record(pools, &blocks, nodes, &alive);
        let view = ClusterView {
            pools,
            blocks: &blocks,
            nodes,
            alive: &alive,
            mode: self.routing_mode(),
        };
        let routes = desired_routes(self.host(), &view);
        let tunnel = self.desired_tunnel(&view, &routes);
        // Local routes win over anything stale the cluster view says.
        let mut desired: BTreeMap<ipnet::IpNet, Route> =
            routes.into_iter().map(|r| (r.dst, r)).collect();

        // Endpoints are read under the lock: an endpoint recorded after
        // the read could otherwise have its fresh veth taken for a stray.
        let _kernel = self.kernel.lock().await;
        let endpoints = self.store.host_endpoints(self.host()).await?;
        // Every recorded ID keeps its veth, also one whose record fails its
        // checks: a corrupt record is never routed to, but its container
        // keeps its link until the record is fixed or removed.
        let ids = self.store.host_endpoint_ids(self.host()).await?;
        let recorded = dataplane::recorded_links(ids.iter().map(String::as_str));
        let links: HashSet<String> = self
            .dataplane
            .tabby_links(&recorded, true)
            .await?
            .into_iter()
            .collect();
        let mut report = ResyncReport::default();
        let mut keep = HashSet::new();
        // Every recorded endpoint keeps its veth: Join may have made it
        // before its state was written.
        for id in &ids {
            keep.insert(host_veth_name(id));
            keep.insert(peer_veth_name(id));
        }
        for ep in &endpoints {
            keep.insert(ep.veth.clone());
            for route in self.endpoint_routes(ep, &links)? {
                desired.insert(route.dst, route);
            }
        }
        for link in links.difference(&keep) {
            self.dataplane.detach(link).await?;
            report.links_removed.push(link.clone());
        }
        for route in self.gateway_routes(&endpoints).await? {
            desired.insert(route.dst, route);
        }
        let mut desired: BTreeSet<Route> = desired.into_values().collect();
        self.tunnel_before_routes(&tunnel, &mut desired).await;
        let diff = self.dataplane.converge_routes(&desired).await?;
        self.tunnel_after_routes(&tunnel).await;
        drop(_kernel);
        // After the kernel: BIRD learns this host's blackholes from it.
        self.converge_bgp(pools, &blocks, nodes).await;

        report.routes = desired.len();
        report.routes_added = diff.added;
        report.routes_removed = diff.removed;
        if report.changed() {
            info!(
                links_removed = report.links_removed.len(),
                routes_added = report.routes_added.len(),
                routes_removed = report.routes_removed.len(),
                "converged"
            );
        }
        self.record_sync(&report).await;
        Ok(report)
    }

    /// Writes this host's sync status when a pass changed something, the
    /// route count moved, or the last write is old: a periodic pass that
    /// finds nothing to do leaves etcd's revision alone.
    async fn record_sync(&self, report: &ResyncReport) {
        let changed = report.changed();
        let mut synced = self.synced.lock().await;
        let now = Utc::now();
        let current = synced.as_ref().is_some_and(|s| {
            s.routes == report.routes && now - s.last_sync < chrono::Duration::minutes(10)
        });
        if current && !changed {
            return;
        }
        let status = NodeStatus {
            routes: report.routes,
            last_sync: now,
        };
        match self.store.put_node_status(self.host(), &status).await {
            Ok(()) => *synced = Some(status),
            Err(err) => warn!(error = %err, "cannot record sync status"),
        }
    }
}
