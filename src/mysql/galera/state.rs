//! Where a Galera member stands, from its `wsrep_%` status variables.

use serde::Serialize;

use crate::mysql::{Member, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct GaleraState {
    /// `wsrep_local_state_comment`: Joining, Donor/Desynced, Joined, Synced…
    pub state: String,
    pub cluster_size: u32,
    /// `wsrep_cluster_status`: Primary, Non-primary or Disconnected.
    pub cluster_status: String,
    pub cluster_uuid: String,
    pub ready: bool,
    /// `wsrep_incoming_addresses`: each member's `ip:port`.
    pub incoming_addresses: Vec<String>,
    pub last_committed: i64,
    /// `wsrep_flow_control_paused`: the share of time replication waited.
    pub flow_control_paused: f64,
}

impl GaleraState {
    pub fn primary(&self) -> bool {
        self.cluster_status == "Primary"
    }

    pub fn synced(&self) -> bool {
        self.primary() && self.ready && self.state == "Synced"
    }

    /// Whether every address appears among the incoming addresses.
    pub fn lists(&self, ips: &[std::net::Ipv4Addr]) -> bool {
        ips.iter().all(|ip| {
            let ip = ip.to_string();
            self.incoming_addresses
                .iter()
                .any(|a| a.split(':').next() == Some(ip.as_str()))
        })
    }

    pub fn describe(&self) -> String {
        let status = match self.cluster_status.as_str() {
            "" => "Disconnected",
            s => s,
        };
        let state = match self.state.as_str() {
            "" => "not in a cluster",
            s => s,
        };
        format!("{state}, cluster size {}, {status}", self.cluster_size)
    }
}

/// Reads the member's Galera status.
pub async fn read(member: &mut Member) -> Result<GaleraState> {
    let rows: Vec<(String, String)> = member
        .rows(
            "reading the wsrep status",
            "SHOW GLOBAL STATUS LIKE 'wsrep\\_%'",
        )
        .await?
        .into_iter()
        .filter_map(|row| mysql_async::from_row_opt::<(String, String)>(row).ok())
        .collect();
    Ok(from_variables(&rows))
}

pub fn from_variables(rows: &[(String, String)]) -> GaleraState {
    let get = |name: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    GaleraState {
        state: get("wsrep_local_state_comment").to_string(),
        cluster_size: get("wsrep_cluster_size").parse().unwrap_or(0),
        cluster_status: get("wsrep_cluster_status").to_string(),
        cluster_uuid: get("wsrep_cluster_state_uuid").to_string(),
        ready: get("wsrep_ready") == "ON",
        incoming_addresses: get("wsrep_incoming_addresses")
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect(),
        last_committed: get("wsrep_last_committed").parse().unwrap_or(-1),
        flow_control_paused: get("wsrep_flow_control_paused").parse().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synced_member_lists_its_peers() {
        let rows: Vec<(String, String)> = [
            ("wsrep_local_state_comment", "Synced"),
            ("wsrep_cluster_size", "3"),
            ("wsrep_cluster_status", "Primary"),
            ("wsrep_ready", "ON"),
            (
                "wsrep_incoming_addresses",
                "198.19.32.1:3306,198.19.32.2:3306",
            ),
            ("wsrep_last_committed", "17"),
            ("wsrep_flow_control_paused", "0.25"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let s = from_variables(&rows);
        assert!(s.synced());
        assert_eq!((s.cluster_size, s.last_committed), (3, 17));
        assert!(s.lists(&["198.19.32.2".parse().unwrap()]));
        assert!(!s.lists(&["198.19.32.3".parse().unwrap()]));
        assert!(!from_variables(&[]).primary());
    }
}
