//! Node registration: one live agent per hostname.
//!
//! The liveness key is created in one transaction that fails while another
//! lease holds it. An agent restarted right after a crash finds its own old
//! lease still alive for up to the TTL: rather than guess whether the
//! holder is "the same agent" (pids and boot ids mean nothing across the
//! namespaces a managed plugin or a lab host runs in), registration waits
//! for the old lease to expire. A live holder refreshes its lease every
//! third of the TTL, so it is still there after the wait, and the newcomer
//! is refused.

use std::time::Duration;

use super::{Error, LeaseGuard, Store, decode, encode};
use crate::model::{Node, NodeStatus};

/// Beyond the TTL itself: etcd expires leases on its leader's clock, a
/// little after the TTL.
const EXPIRY_SLACK: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(250);

impl Store {
    /// Takes this hostname's liveness lease, waiting up to the TTL (plus a
    /// little) for a previous holder's lease to expire; then records the
    /// node. Refused, with the holder named, if another agent keeps it.
    pub(super) async fn claim_hostname(
        &self,
        node: &Node,
        ttl_secs: i64,
    ) -> Result<LeaseGuard, Error> {
        let key = self.keys.alive(&node.hostname);
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(ttl_secs.max(0) as u64)
            + EXPIRY_SLACK;
        let mut logged = false;
        loop {
            if let Some(guard) = self.kv.create_leased(&key, encode(node), ttl_secs).await? {
                // Only the lease holder writes the node record: a refused
                // agent must not overwrite the live one's address.
                self.kv
                    .put(&self.keys.node(&node.hostname), encode(node))
                    .await?;
                return Ok(guard);
            }
            let holder: Option<Node> = match self.kv.get(&key).await? {
                Some(v) => decode(&key, &v.value).ok(),
                // Expired between the two calls: try again at once.
                None => continue,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::HostnameTaken {
                    host: node.hostname.clone(),
                    holder: describe(holder.as_ref()),
                    waited: ttl_secs,
                });
            }
            if !logged {
                tracing::info!(
                    host = %node.hostname,
                    holder = %describe(holder.as_ref()),
                    "hostname's liveness lease is held: waiting up to the node TTL for it to expire"
                );
                logged = true;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Store {
    /// Forgets a node that is gone: its record, statuses and settings.
    pub async fn delete_node(&self, host: &str) -> Result<(), Error> {
        self.kv.delete(&self.keys.node(host)).await?;
        self.kv.delete(&self.keys.node_status(host)).await?;
        self.kv.delete(&self.keys.policy_status(host)).await?;
        self.delete_node_bgp(host).await
    }

    pub async fn node_statuses(&self) -> Result<Vec<(String, NodeStatus)>, Error> {
        let prefix = self.keys.node_statuses();
        let (good, _) = self.list_checked::<NodeStatus>(&prefix).await?;
        Ok(good
            .into_iter()
            .map(|(key, v)| (key[prefix.len()..].to_string(), v.value))
            .collect())
    }

    pub async fn put_node_status(&self, host: &str, status: &NodeStatus) -> Result<(), Error> {
        self.kv
            .put(&self.keys.node_status(host), super::encode(status))
            .await
    }
}

fn describe(holder: Option<&Node>) -> String {
    match holder {
        Some(n) => format!(
            "an agent at {} started {} (tabby {})",
            n.ip,
            n.started.format("%Y-%m-%d %H:%M:%S UTC"),
            n.version
        ),
        None => "an agent whose record cannot be read".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use chrono::Utc;

    use super::*;

    fn node(ip: [u8; 4]) -> Node {
        Node {
            hostname: "h1".into(),
            ip: Ipv4Addr::from(ip),
            started: Utc::now(),
            version: "test".into(),
            subnet: None,
            vxlan_mac: None,
            ip6: None,
        }
    }

    #[tokio::test]
    async fn a_second_agent_with_a_live_hostname_is_refused_and_changes_nothing() {
        let store = Store::in_memory();
        let first = store
            .register_node(&node([198, 18, 0, 11]), 1)
            .await
            .unwrap();
        let revision = store.revision().await.unwrap();
        let err = store
            .register_node(&node([198, 18, 0, 99]), 1)
            .await
            .err()
            .expect("refused");
        let message = err.to_string();
        assert!(
            message.contains("h1") && message.contains("198.18.0.11"),
            "{message}"
        );
        assert_eq!(store.revision().await.unwrap(), revision);
        let nodes = store.nodes().await.unwrap();
        assert_eq!(nodes[0].ip, Ipv4Addr::new(198, 18, 0, 11));
        first.release().await;
    }

    #[tokio::test]
    async fn a_restarted_agent_takes_over_once_the_old_lease_is_gone() {
        let store = Store::in_memory();
        let first = store
            .register_node(&node([198, 18, 0, 11]), 1)
            .await
            .unwrap();
        let old = tokio::spawn(async move {
            // The crashed agent's lease expires while the new one waits.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            first.release().await;
        });
        let second = store.register_node(&node([198, 18, 0, 12]), 1).await;
        assert!(second.is_ok(), "{:?}", second.err());
        old.await.unwrap();
        assert_eq!(store.alive_hosts().await.unwrap(), ["h1"]);
        assert_eq!(
            store.nodes().await.unwrap()[0].ip,
            Ipv4Addr::new(198, 18, 0, 12)
        );
    }
}
