//! The agent's part in Galera clusters: for every member on this host,
//! make the container match the cluster record (`mysql::galera::converge`)
//! and report what was done. Passes run when a cluster record changes, and
//! again on a timer while something failed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn};

use crate::docker::Containers;
use crate::model::Endpoint;
use crate::model::galera::GaleraCluster;
use crate::mysql::galera::cluster::{Placement, placement};
use crate::mysql::galera::converge::{converge, new_status, pending};
use crate::store::Store;

const RETRY: Duration = Duration::from_secs(3);

pub struct GaleraAgent {
    pub store: Store,
    pub host: String,
    pub containers: Arc<dyn Containers>,
}

impl GaleraAgent {
    pub async fn run(self, changed: Arc<Notify>) -> anyhow::Result<()> {
        loop {
            let retry = match self.pass().await {
                Ok(retry) => retry,
                Err(err) => {
                    warn!(error = %err, "Galera members");
                    true
                }
            };
            super::supervise::next_pass(&changed, retry, RETRY).await;
        }
    }

    /// One pass over this host's members; true if one must be retried.
    async fn pass(&self) -> Result<bool, crate::store::Error> {
        let endpoints = self.store.endpoints().await?;
        let networks: Vec<String> = self
            .store
            .networks()
            .await?
            .into_iter()
            .map(|n| n.id)
            .collect();
        let mut retry = false;
        let (mut converged, mut failing) = (0, 0);
        for mut cluster in self.store.galera_clusters().await? {
            refresh_addresses(&mut cluster, &endpoints);
            let statuses = self.store.galera_statuses(&cluster.name).await?;
            for member in cluster.members.iter().filter(|m| m.host == self.host) {
                let status = statuses
                    .iter()
                    .find(|s| s.container == member.container)
                    .cloned()
                    .unwrap_or_else(|| new_status(member));
                // Only containers attached to a tabby network are touched;
                // Docker keeps the attachment while the container is
                // stopped (its endpoint record is gone then).
                if let Err(reason) = self.owned(&member.container, &networks).await {
                    if status.error.as_deref() != Some(reason.as_str()) {
                        warn!(cluster = %cluster.name, container = %member.container, "Galera member left alone: {reason}");
                        let mut status = status;
                        status.error = Some(reason);
                        status.updated = chrono::Utc::now();
                        self.store.put_galera_status(&cluster.name, &status).await?;
                    }
                    retry = true;
                    continue;
                }
                let (was_pending, had_error) = (pending(member, &status), status.error.is_some());
                let (status, result) =
                    converge(self.containers.as_ref(), &cluster, member, status).await;
                match &result {
                    Ok(true) => {
                        info!(cluster = %cluster.name, container = %member.container, restarts = status.applied_restarts, probes = status.applied_probes, "Galera member converged")
                    }
                    Ok(false) => {}
                    Err(err) => {
                        warn!(cluster = %cluster.name, error = %err, "Galera member not converged; retrying");
                        retry = true;
                    }
                }
                // The config file alone is rewritten on every change of the
                // record; the report is written when there is news.
                if was_pending || had_error || result.is_err() {
                    self.store.put_galera_status(&cluster.name, &status).await?;
                }
                if result.is_ok() {
                    converged += 1;
                } else {
                    failing += 1;
                }
            }
        }
        let metrics = &crate::metrics::get().galera_members;
        for (state, count) in [("converged", converged), ("failing", failing)] {
            metrics
                .get_or_create(&crate::metrics::StateLabels {
                    state: state.into(),
                })
                .set(count);
        }
        Ok(retry)
    }
}

impl GaleraAgent {
    /// Whether the container is on one of tabby's networks; why not.
    async fn owned(&self, container: &str, networks: &[String]) -> Result<(), String> {
        match self.containers.network_ids(container).await {
            Ok(Some(ids)) if ids.iter().any(|id| networks.contains(id)) => Ok(()),
            Ok(Some(_)) => Err("not attached to a tabby network".into()),
            Ok(None) => Err("no such container on this host".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Members' addresses as tabby's endpoints hold them now: a container that
/// started again may have another one. A stopped member keeps the
/// recorded address.
fn refresh_addresses(cluster: &mut GaleraCluster, endpoints: &[Endpoint]) {
    for member in &mut cluster.members {
        if let Placement::At(endpoint) = placement(endpoints, &member.host, &member.container) {
            member.ip = endpoint.ip;
        }
    }
}
