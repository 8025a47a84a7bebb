//! Label-driven Galera clusters: containers run with
//! `--label tabby.mysql.cluster=NAME --label tabby.mysql.role=galera` on a
//! tabby network, in a cluster the operator declared and confirmed them
//! for (`declare`), form the cluster on their own. The agent on the host
//! of the oldest member starts it there; the agent on the host of the
//! cluster's first recorded member joins each later one as it appears.
//! This is the article's entrypoint-plus-orchestrator discovery, done from
//! tabby's own endpoint records.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn};

use crate::model::galera::SstMethod;
use crate::mysql::Credentials;
use crate::mysql::declare::admit;
use crate::mysql::galera::cluster::Galera;
use crate::mysql::labels::{galera_clusters, member_name};
use crate::store::Store;

const RETRY: Duration = Duration::from_secs(3);
/// Each member may take this long to reach a state (a state transfer).
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

pub struct GaleraLabels {
    pub store: Store,
    pub host: String,
    pub credentials: Option<Credentials>,
}

impl GaleraLabels {
    pub async fn run(self, changed: Arc<Notify>) -> anyhow::Result<()> {
        let mut warned = false;
        loop {
            let pending = match self.pass(&mut warned).await {
                Ok(pending) => pending,
                Err(err) => {
                    info!(error = %err, "label-driven Galera cluster not formed yet; retrying");
                    true
                }
            };
            super::supervise::next_pass(&changed, pending, RETRY).await;
        }
    }

    /// One step for every labelled cluster this host leads; true if a
    /// cluster still waits for something.
    async fn pass(&self, warned: &mut bool) -> crate::mysql::Result<bool> {
        let endpoints = self.store.endpoints().await?;
        let declarations = self.store.mysql_declarations().await?;
        let (admitted, _refused) = admit(&endpoints, &declarations);
        let mut pending = false;
        for (name, members) in galera_clusters(&admitted) {
            let record = self.store.galera_cluster(&name).await?;
            let leader = match &record {
                Some(record) => record.members.first().map(|m| m.host.clone()),
                None => members.first().map(|e| e.host.clone()),
            };
            if leader.as_deref() != Some(self.host.as_str()) {
                continue;
            }
            let Some(credentials) = &self.credentials else {
                if !*warned {
                    *warned = true;
                    warn!(cluster = %name, "labelled Galera cluster found, but the agent has no --mysql-root-password-file: not forming it");
                }
                continue;
            };
            let galera = Galera {
                store: &self.store,
                docker: None,
                credentials,
                timeout: STEP_TIMEOUT,
                say: &|line| info!("{line}"),
            };
            let names: Vec<String> = members.iter().map(member_name).collect();
            let result = match &record {
                None => galera
                    .form(&name, &names[..1], SstMethod::default())
                    .await
                    .map(|_| true),
                Some(record) => match names.iter().find(|n| record.member(n).is_none()) {
                    Some(joiner) => galera.join(&name, joiner).await.map(|_| true),
                    None => Ok(false),
                },
            };
            match result {
                Ok(true) => {
                    info!(cluster = %name, "label-driven Galera cluster changed");
                    pending = true;
                }
                Ok(false) => {}
                Err(err) => {
                    warn!(cluster = %name, error = %err, "label-driven Galera step failed; retrying");
                    pending = true;
                }
            }
        }
        Ok(pending)
    }
}
