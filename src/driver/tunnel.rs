//! This host's part of VXLAN encapsulation: the tunnel the routes of
//! encapsulating pools go through, made before those routes and removed
//! after them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use tracing::warn;

use super::Driver;
use crate::dataplane::vxlan::Mac;
use crate::dataplane::{Route, RouteTarget, VXLAN_OVERHEAD, VXLAN_PORT, VxlanSpec};
use crate::model::{Node, Pool};
use crate::routing::ClusterView;

pub(super) type Tunnel = Option<(VxlanSpec, BTreeMap<Ipv4Addr, Mac>)>;

impl Driver {
    /// The VXLAN guard set (see `vxlan_peers`), from the pools and nodes
    /// the pass has read when it has, else read here: the nodes only when
    /// a pool encapsulates.
    pub(super) async fn vxlan_guard(
        &self,
        read: Option<(&[Pool], &[Node])>,
    ) -> Result<Option<Vec<Ipv4Addr>>, super::Error> {
        if let Some((pools, nodes)) = read {
            return Ok(vxlan_peers(pools, nodes));
        }
        let pools = self.ipam.pools().await?;
        if pools.iter().all(|p| p.vxlan.is_never()) {
            return Ok(None);
        }
        Ok(vxlan_peers(&pools, &self.store.nodes().await?))
    }

    /// The tunnel this host needs for `routes` (its routes in `view`):
    /// None when no pool encapsulates, or when this host's own record has
    /// no tunnel MAC.
    pub(super) fn desired_tunnel(&self, view: &ClusterView, routes: &BTreeSet<Route>) -> Tunnel {
        let peers = crate::routing::desired_tunnel(view, routes)?;
        let me = view.nodes.iter().find(|n| n.hostname == self.host())?;
        let mac = crate::model::unicast_mac(me.vxlan_mac.as_deref()?).ok()?;
        let spec = VxlanSpec {
            local: me.ip,
            mac,
            mtu: self.dataplane.mtu().saturating_sub(VXLAN_OVERHEAD),
            port: VXLAN_PORT,
        };
        Some((spec, peers))
    }

    /// Before the routes: the tunnel they need. When it cannot be made
    /// (a foreign link holds its name), the routes through it are left
    /// out, so nothing is routed into a device tabby does not own.
    pub(super) async fn tunnel_before_routes(
        &self,
        tunnel: &Tunnel,
        desired: &mut BTreeSet<Route>,
    ) {
        let Some((spec, peers)) = tunnel else {
            return;
        };
        if let Err(err) = self.dataplane.converge_tunnel(Some((spec, peers))).await {
            warn!(error = %err, "no VXLAN tunnel: its routes are left out");
            desired.retain(|r| !matches!(r.target, RouteTarget::Tunnel(_)));
        }
    }

    /// After the routes: no tunnel once no pool needs one.
    pub(super) async fn tunnel_after_routes(&self, tunnel: &Tunnel) {
        if tunnel.is_none()
            && let Err(err) = self.dataplane.converge_tunnel(None).await
        {
            warn!(error = %err, "cannot remove the VXLAN tunnel");
        }
    }
}

/// With a pool that encapsulates, every registered node's address (the
/// only sources VXLAN is taken from); None without one.
fn vxlan_peers(pools: &[Pool], nodes: &[Node]) -> Option<Vec<Ipv4Addr>> {
    if pools.iter().all(|p| p.vxlan.is_never()) {
        return None;
    }
    Some(nodes.iter().map(|n| n.ip).collect())
}
