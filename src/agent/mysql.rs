//! Label-driven MySQL bootstrap: the agent on a labelled master's host
//! bootstraps its cluster whenever the members change, retrying while
//! servers are still starting. Only clusters an operator declared, and
//! only the members the declaration confirms, are touched (`declare`);
//! any other labelled container is logged and left alone. A cluster whose
//! recorded members already match (bootstrapped before, or promoted
//! since) is left alone.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn};

use crate::mysql::Credentials;
use crate::mysql::bootstrap::Options;
use crate::mysql::cluster::Context;
use crate::mysql::declare::admit;
use crate::mysql::labels::{LabelledCluster, clusters};
use crate::mysql::seed::Silent;
use crate::store::Store;

const RETRY: Duration = Duration::from_secs(3);

pub struct LabelBootstrap {
    pub store: Store,
    pub host: String,
    /// None: labelled clusters are reported, not bootstrapped.
    pub credentials: Option<Credentials>,
}

impl LabelBootstrap {
    pub async fn run(self, changed: Arc<Notify>) -> anyhow::Result<()> {
        let mut done: HashMap<String, Vec<String>> = HashMap::new();
        let mut reported = HashSet::new();
        loop {
            let pending = match self.pass(&mut done, &mut reported).await {
                Ok(pending) => pending,
                Err(err) => {
                    warn!(error = %err, "label-driven MySQL bootstrap");
                    true
                }
            };
            super::supervise::next_pass(&changed, pending, RETRY).await;
        }
    }

    /// One look at the labelled clusters; true if one still waits.
    async fn pass(
        &self,
        done: &mut HashMap<String, Vec<String>>,
        reported: &mut HashSet<String>,
    ) -> crate::mysql::Result<bool> {
        let endpoints = self.store.endpoints().await?;
        let declarations = self.store.mysql_declarations().await?;
        let (admitted, refused) = admit(&endpoints, &declarations);
        for r in refused {
            // Each agent reports its own host's containers.
            if r.host == self.host
                && reported.insert(format!(
                    "refused {} {} {}",
                    r.container, r.cluster, r.reason
                ))
            {
                warn!(container = %r.container, cluster = %r.cluster, "labelled MySQL container left alone: {}", r.reason);
            }
        }
        let (found, problems) = clusters(&admitted);
        for problem in problems {
            if reported.insert(problem.clone()) {
                warn!("{problem}");
            }
        }
        let mut pending = false;
        let mut states = ClusterStates::default();
        for cluster in found.iter().filter(|c| c.master.host == self.host) {
            let members = cluster.member_names();
            let size = members.len();
            if done.get(&cluster.name) == Some(&members) || self.recorded(cluster).await? {
                done.insert(cluster.name.clone(), members);
                states.add("replicating", size);
                continue;
            }
            let Some(credentials) = &self.credentials else {
                if reported.insert(format!("credentials {}", cluster.name)) {
                    warn!(cluster = %cluster.name, "labelled MySQL cluster found, but the agent has no --mysql-root-password-file: not bootstrapping it");
                }
                states.add("no_credentials", size);
                continue;
            };
            match self.bootstrap(cluster, credentials).await {
                Ok(()) => {
                    info!(cluster = %cluster.name, members = ?members, "bootstrapped MySQL replication from labels");
                    done.insert(cluster.name.clone(), members);
                    states.add("replicating", size);
                }
                Err(err) => {
                    info!(cluster = %cluster.name, error = %err, "MySQL bootstrap from labels not done yet; retrying");
                    pending = true;
                    states.add("pending", size);
                }
            }
        }
        states.record();
        Ok(pending)
    }

    /// Whether the datastore records exactly these members already.
    async fn recorded(&self, cluster: &LabelledCluster) -> crate::mysql::Result<bool> {
        let Some(record) = self.store.mysql_cluster(&cluster.name).await? else {
            return Ok(false);
        };
        let recorded: BTreeSet<&String> = std::iter::once(&record.master)
            .chain(&record.replicas)
            .collect();
        let members = cluster.member_names();
        Ok(recorded == members.iter().collect())
    }

    async fn bootstrap(
        &self,
        cluster: &LabelledCluster,
        credentials: &Credentials,
    ) -> crate::mysql::Result<()> {
        let context = Context {
            store: &self.store,
            docker: None,
        };
        let replicas: Vec<String> = cluster.replicas.iter().map(|e| e.ip.to_string()).collect();
        context
            .bootstrap(
                &cluster.name,
                &cluster.master.ip.to_string(),
                &replicas,
                credentials,
                &Options::default(),
                &Silent,
            )
            .await
            .map(|_| ())
    }
}

/// The clusters whose master is on this host, and their members, by what
/// this agent last did with them (for the metrics).
#[derive(Default)]
struct ClusterStates(std::collections::BTreeMap<&'static str, (i64, i64)>);

impl ClusterStates {
    fn add(&mut self, state: &'static str, members: usize) {
        let entry = self.0.entry(state).or_default();
        entry.0 += 1;
        entry.1 += members as i64;
    }

    fn record(&self) {
        let m = crate::metrics::get();
        for state in ["replicating", "pending", "no_credentials"] {
            let (clusters, members) = self.0.get(state).copied().unwrap_or_default();
            let labels = crate::metrics::StateLabels {
                state: state.into(),
            };
            m.mysql_clusters.get_or_create(&labels).set(clusters);
            m.mysql_members.get_or_create(&labels).set(members);
        }
    }
}
