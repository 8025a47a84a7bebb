//! BGP mode's part of a convergence pass: BIRD's configuration follows
//! the datastore (nodes, pools, this host's blocks, BGP settings).

use std::sync::Arc;

use ipnet::IpNet;
use tracing::{info, warn};

use super::{Driver, Error};
use crate::model::{BgpStatus, Block, Node, Pool};
use crate::routing::bgp::{BgpView, render};
use crate::routing::bird::{SessionState, Speaker};

pub(super) struct BgpRouting {
    pub speaker: Arc<dyn Speaker>,
    pub hold_time: u16,
}

impl Driver {
    /// A speaker that fails is logged and tried again on the next pass:
    /// the routes and firewall of this pass stand without it.
    pub(super) async fn converge_bgp(&self, pools: &[Pool], blocks: &[Block], nodes: &[Node]) {
        let Some(bgp) = &self.bgp else {
            return;
        };
        if let Err(err) = self.try_converge_bgp(bgp, pools, blocks, nodes).await {
            warn!(error = %err, "cannot configure BGP");
        }
    }

    async fn try_converge_bgp(
        &self,
        bgp: &BgpRouting,
        pools: &[Pool],
        blocks: &[Block],
        nodes: &[Node],
    ) -> Result<(), Error> {
        let settings = self.store.bgp_settings().await?;
        let pools: Vec<IpNet> = pools.iter().map(|p| p.cidr).collect();
        let own: Vec<IpNet> = blocks
            .iter()
            .filter(|b| b.affinity.as_deref() == Some(self.host()))
            .map(|b| b.cidr)
            .collect();
        let view = BgpView {
            host: self.host(),
            settings: &settings,
            nodes,
            pools: &pools,
            own_blocks: &own,
            hold_time: bgp.hold_time,
        };
        let Some(config) = render(&view) else {
            return Ok(());
        };
        if bgp.speaker.converge(&config).await? {
            info!(
                sessions = crate::routing::bgp::sessions(&view).len(),
                "BGP configuration applied"
            );
        }
        Ok(())
    }

    /// This host's BGP sessions (none in direct mode).
    pub async fn bgp_sessions(&self) -> Result<Vec<SessionState>, Error> {
        match &self.bgp {
            Some(bgp) => Ok(bgp.speaker.sessions().await?),
            None => Ok(Vec::new()),
        }
    }

    /// Records the session counts when they changed, or every ten minutes.
    pub async fn record_bgp_status(&self, last: &mut Option<BgpStatus>) -> Result<(), Error> {
        let sessions = self.bgp_sessions().await?;
        crate::metrics::get().bgp(sessions.iter().map(|s| s.info.as_str()));
        let now = chrono::Utc::now();
        let status = BgpStatus {
            established: sessions.iter().filter(|s| s.established()).count(),
            configured: sessions.len(),
            established6: sessions.iter().filter(|s| s.ipv6).count(),
            updated: now,
        };
        let current = last.as_ref().is_some_and(|l| {
            l.established == status.established
                && l.configured == status.configured
                && l.established6 == status.established6
                && now - l.updated < chrono::Duration::minutes(10)
        });
        if !current {
            self.store.put_bgp_status(self.host(), &status).await?;
            *last = Some(status);
        }
        Ok(())
    }
}
