//! What `tabby status` asks the local agent (`/Tabby.Status`): how long it
//! has run, when the firewall and routes were last applied, its endpoints,
//! BGP sessions, readiness and the last warnings and errors.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::Driver;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    pub version: String,
    pub host: String,
    /// Unix seconds.
    pub started: i64,
    pub firewall: String,
    /// Unix seconds of the last firewall apply that succeeded.
    pub firewall_applied: Option<i64>,
    pub routing: String,
    pub routes: i64,
    /// Unix seconds of the last route sync that succeeded.
    pub routes_synced: Option<i64>,
    pub resyncs: u64,
    pub local_endpoints: i64,
    pub cluster_endpoints: i64,
    /// BGP sessions: peer and BIRD's info column.
    pub bgp_sessions: Vec<(String, String)>,
    /// The last warnings and errors logged: Unix seconds, level, text.
    pub recent_errors: Vec<(i64, String, String)>,
    /// Why the agent is not ready; None when it is.
    pub not_ready: Option<String>,
}

impl Driver {
    pub async fn status(&self) -> AgentStatus {
        let m = crate::metrics::get();
        let health = &m.health;
        let applied = health.firewall_applied.load(Ordering::Relaxed);
        let synced = health.routes_synced.load(Ordering::Relaxed);
        let sessions = self.bgp_sessions().await.unwrap_or_default();
        AgentStatus {
            version: crate::VERSION.to_string(),
            host: self.host().to_string(),
            started: health.started.load(Ordering::Relaxed),
            firewall: health.backend.get().copied().unwrap_or("?").to_string(),
            firewall_applied: (applied > 0).then_some(applied),
            routing: format!("{:?}", self.routing_mode()).to_lowercase(),
            routes: m.routes.get(),
            routes_synced: (synced > 0).then_some(synced),
            resyncs: m.resyncs.get(),
            local_endpoints: m.local_endpoints.get(),
            cluster_endpoints: m.cluster_endpoints.get(),
            bgp_sessions: sessions
                .iter()
                .map(|s| (s.peer.to_string(), s.info.clone()))
                .collect(),
            recent_errors: health.recent.all(),
            not_ready: crate::metrics::serve::not_ready(&self.store).await,
        }
    }
}
