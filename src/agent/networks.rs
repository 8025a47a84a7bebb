//! Makes each network definition (`tabby network create`) a local Docker
//! network on this host, and removes the ones whose definition is gone.
//! Runs apart from route convergence: Docker may be slow, or down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::docker::{DockerEngine, NetworkSpec};
use crate::model::{NetworkDef, NetworkStatus};
use crate::store::Store;

/// While anything failed, try again this often.
const RETRY: Duration = Duration::from_secs(3);

pub struct NetworkSync {
    pub store: Store,
    pub docker: Arc<DockerEngine>,
    pub host: String,
    /// The name dockerd knows this plugin by (`tabby`, or `tabby/tabby:latest`
    /// for the managed plugin).
    pub driver_name: String,
}

impl NetworkSync {
    /// Syncs at start, then whenever `changed` is notified.
    pub async fn run(self, changed: Arc<Notify>) -> anyhow::Result<()> {
        loop {
            let all_done = match self.sync().await {
                Ok(done) => done,
                Err(err) => {
                    warn!(error = %err, "network sync failed");
                    false
                }
            };
            super::supervise::next_pass(&changed, !all_done, RETRY).await;
        }
    }

    /// One pass. True when every definition has its Docker network and no
    /// orphan remains.
    async fn sync(&self) -> anyhow::Result<bool> {
        let defs = self.store.netdefs().await?;
        let existing = self.docker.managed_networks().await?;
        let mut done = true;
        for def in &defs {
            let status = match existing.iter().find(|n| n.name == def.name) {
                Some(network) => Ok(network.id.clone()),
                None => self.create(def).await,
            };
            done &= status.is_ok();
            self.report(&def.name, status).await?;
        }
        for orphan in existing
            .iter()
            .filter(|n| !defs.iter().any(|d| d.name == n.def))
        {
            let containers = self.docker.network_containers(&orphan.id).await?;
            if containers > 0 {
                done = false;
                let msg =
                    format!("definition removed but {containers} container(s) still attached");
                self.report(&orphan.def, Err(msg)).await?;
                continue;
            }
            self.docker.remove_network(&orphan.id).await?;
            self.store.delete_netstatus(&orphan.def, &self.host).await?;
            info!(network = %orphan.name, "removed Docker network");
        }
        Ok(done)
    }

    async fn create(&self, def: &NetworkDef) -> Result<String, String> {
        // One profile for the network on every host: the one given, else
        // the network's name (each host's Docker network has its own ID).
        let profile = def.profile.clone().unwrap_or_else(|| def.name.clone());
        let options = HashMap::from([(crate::driver::PROFILE_OPTION.to_string(), profile)]);
        let subnet = def.subnet.to_string();
        let subnet6 = def.subnet6.map(|s| s.to_string());
        let spec = NetworkSpec {
            name: &def.name,
            driver: &self.driver_name,
            subnet: &subnet,
            subnet6: subnet6.as_deref(),
            options,
        };
        match self.docker.create_network(spec).await {
            Ok(id) => {
                info!(network = %def.name, %subnet, "created Docker network");
                Ok(id)
            }
            Err(err) => {
                warn!(network = %def.name, error = %err, "cannot create Docker network");
                Err(err.to_string())
            }
        }
    }

    /// Records this host's state of a network, writing only on change.
    async fn report(&self, name: &str, outcome: Result<String, String>) -> anyhow::Result<()> {
        let (docker_id, error) = match outcome {
            Ok(id) => (Some(id), None),
            Err(e) => (None, Some(e)),
        };
        let current = self.store.netstatuses(name).await?;
        let unchanged = current
            .iter()
            .any(|s| s.host == self.host && s.docker_id == docker_id && s.error == error);
        if !unchanged {
            let status = NetworkStatus {
                host: self.host.clone(),
                docker_id,
                error,
                updated: Utc::now(),
            };
            self.store.put_netstatus(name, &status).await?;
        }
        Ok(())
    }
}
