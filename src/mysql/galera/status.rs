//! Galera members in `tabby mysql status`: every recorded member, asked
//! where tabby's endpoints place it now.

use serde::Serialize;

use super::cluster::Galera;
use super::state::GaleraState;
use super::wait::probe;
use crate::mysql::{Error, Result};

/// One row of `tabby mysql status` for a Galera member.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub cluster: String,
    pub container: String,
    pub host: String,
    pub address: String,
    pub state: Option<GaleraState>,
    pub error: Option<String>,
}

impl Galera<'_> {
    /// Every recorded Galera member (of one cluster, or all), as it
    /// answers now.
    pub async fn status(&self, cluster: Option<&str>) -> Result<Vec<MemberStatus>> {
        let mut records = self.store.galera_clusters().await?;
        if let Some(name) = cluster {
            records.retain(|r| r.name == name);
        }
        let mut rows = Vec::new();
        for record in records {
            for m in self.running_members(&record).await? {
                let answer = match &m.endpoint {
                    Some(_) => probe(&m, self.credentials).await,
                    None => Err(Error::Unhealthy {
                        member: m.target.to_string(),
                        message: "its container is not running (no tabby endpoint)".into(),
                    }),
                };
                rows.push(MemberStatus {
                    cluster: record.name.clone(),
                    container: m.container.clone(),
                    host: m.host.clone(),
                    address: m.target.ip.to_string(),
                    error: answer.as_ref().err().map(|e| e.to_string()),
                    state: answer.ok(),
                });
            }
        }
        Ok(rows)
    }
}
