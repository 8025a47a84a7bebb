//! Keeps this node's liveness key in etcd. The store's keep-alive renews
//! the lease, and re-grants it when it expired; a key deleted by hand (or
//! by a compaction of a lost lease) leaves a live lease with no key, so
//! the key itself is checked too and the node registered again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::model::Node;
use crate::store::{LeaseGuard, Store};

pub struct Liveness {
    pub store: Store,
    pub node: Node,
    pub ttl: i64,
    /// The lease in use; the agent releases it on shutdown.
    pub guard: Arc<Mutex<Option<LeaseGuard>>>,
}

impl Liveness {
    /// How often the key is checked: a third of the TTL, like the renewal.
    fn period(&self) -> Duration {
        Duration::from_millis((self.ttl.max(1) as u64 * 1000 / 3).max(500))
    }

    pub async fn run(self) -> anyhow::Result<()> {
        // Ticks before the first sleep: an agent that is ready sooner than
        // a period after start must not read as dead on /livez.
        loop {
            crate::metrics::get().health.tick();
            if let Err(err) = self.check().await {
                warn!(error = %err, "cannot check this node's liveness key");
            }
            tokio::time::sleep(self.period()).await;
        }
    }

    /// Registers the node again if its liveness key is gone; true if it was.
    pub async fn check(&self) -> Result<bool, crate::store::Error> {
        let alive = self.store.alive_hosts().await?;
        if alive.contains(&self.node.hostname) {
            return Ok(false);
        }
        let fresh = self.store.register_node(&self.node, self.ttl).await?;
        // The old lease goes after the new key is written: revoking it
        // cannot take the new key with it.
        let old = self.guard.lock().await.replace(fresh);
        drop(old);
        info!(host = %self.node.hostname, "liveness key was gone: node registered again");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Kv;
    use crate::store::memory::MemoryKv;

    #[tokio::test]
    async fn a_liveness_key_deleted_by_hand_is_written_again() {
        let kv = Arc::new(MemoryKv::new());
        let store = Store::new(kv.clone(), "/tabby");
        let node = Node {
            hostname: "h1".into(),
            ip: "198.18.0.11".parse().unwrap(),
            started: chrono::Utc::now(),
            version: "test".into(),
            subnet: None,
            vxlan_mac: None,
            ip6: None,
        };
        let guard = store.register_node(&node, 3).await.unwrap();
        let liveness = Liveness {
            store: store.clone(),
            node,
            ttl: 3,
            guard: Arc::new(Mutex::new(Some(guard))),
        };
        assert!(!liveness.check().await.unwrap(), "present: left alone");
        kv.delete(&store.keys().alive("h1")).await.unwrap();
        assert!(store.alive_hosts().await.unwrap().is_empty());
        assert!(liveness.check().await.unwrap());
        assert_eq!(store.alive_hosts().await.unwrap(), ["h1"]);
    }
}
