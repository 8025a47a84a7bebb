//! BGP settings, peers and the agents' session counts.

use std::collections::BTreeMap;

use super::{Error, Store, decode, encode};
use crate::model::{BgpConfig, BgpPeer, BgpSettings, BgpStatus, NodeBgp};

impl Store {
    /// The cluster-wide settings; defaults when none were stored. A record
    /// that cannot be used is an error, not the defaults: turning the mesh
    /// back on behind the operator's back would change every host.
    pub async fn bgp_config(&self) -> Result<BgpConfig, Error> {
        Ok(self
            .get_typed(&self.keys.bgp_config())
            .await?
            .map(|v| v.value)
            .unwrap_or_default())
    }

    pub async fn put_bgp_config(&self, config: &BgpConfig) -> Result<(), Error> {
        self.kv.put(&self.keys.bgp_config(), encode(config)).await
    }

    pub async fn bgp_nodes(&self) -> Result<BTreeMap<String, NodeBgp>, Error> {
        let prefix = self.keys.bgp_nodes();
        let (good, _) = self.list_checked::<NodeBgp>(&prefix).await?;
        Ok(good
            .into_iter()
            .map(|(key, v)| (key[prefix.len()..].to_string(), v.value))
            .collect())
    }

    /// A node's settings; all inherited (none stored) removes its key.
    pub async fn put_bgp_node(&self, host: &str, node: &NodeBgp) -> Result<(), Error> {
        let key = self.keys.bgp_node(host);
        if *node == NodeBgp::default() {
            self.kv.delete(&key).await?;
        } else {
            self.kv.put(&key, encode(node)).await?;
        }
        Ok(())
    }

    /// Peers whose record agrees with its key (a record copied to another
    /// key would otherwise make a second session, or a node's peer global).
    pub async fn bgp_peers(&self) -> Result<Vec<BgpPeer>, Error> {
        let (good, _) = self.list_checked::<BgpPeer>(&self.keys.bgp_peers()).await?;
        let mut peers: Vec<BgpPeer> = good
            .into_iter()
            .filter(|(key, v)| {
                let agrees = *key == self.keys.bgp_peer(v.value.ip, v.value.node.as_deref());
                if !agrees {
                    tracing::warn!(%key, "BGP peer record disagrees with its key: ignored");
                }
                agrees
            })
            .map(|(_, v)| v.value)
            .collect();
        peers.sort();
        Ok(peers)
    }

    /// Adds a peer, or changes its AS; false when it was already so.
    pub async fn put_bgp_peer(&self, peer: &BgpPeer) -> Result<bool, Error> {
        let key = self.keys.bgp_peer(peer.ip, peer.node.as_deref());
        if let Some(old) = self.kv.get(&key).await?
            && decode::<BgpPeer>(&key, &old.value).ok().as_ref() == Some(peer)
        {
            return Ok(false);
        }
        self.kv.put(&key, encode(peer)).await?;
        Ok(true)
    }

    /// Removes a peer; false when there was none.
    pub async fn delete_bgp_peer(
        &self,
        ip: std::net::Ipv4Addr,
        node: Option<&str>,
    ) -> Result<bool, Error> {
        let key = self.keys.bgp_peer(ip, node);
        if self.kv.get(&key).await?.is_none() {
            return Ok(false);
        }
        self.kv.delete(&key).await?;
        Ok(true)
    }

    pub async fn bgp_settings(&self) -> Result<BgpSettings, Error> {
        let (config, nodes, peers) =
            tokio::try_join!(self.bgp_config(), self.bgp_nodes(), self.bgp_peers())?;
        Ok(BgpSettings {
            config,
            nodes,
            peers,
        })
    }

    /// A node that comes back under this name starts from the defaults.
    pub(super) async fn delete_node_bgp(&self, host: &str) -> Result<(), Error> {
        self.kv.delete(&self.keys.bgp_status(host)).await?;
        self.kv.delete(&self.keys.bgp_node(host)).await?;
        for (key, _) in self.kv.list(&self.keys.bgp_node_peers(host)).await? {
            self.kv.delete(&key).await?;
        }
        Ok(())
    }

    pub async fn bgp_statuses(&self) -> Result<BTreeMap<String, BgpStatus>, Error> {
        let prefix = self.keys.bgp_statuses();
        let (good, _) = self.list_checked::<BgpStatus>(&prefix).await?;
        Ok(good
            .into_iter()
            .map(|(key, v)| (key[prefix.len()..].to_string(), v.value))
            .collect())
    }

    pub async fn put_bgp_status(&self, host: &str, status: &BgpStatus) -> Result<(), Error> {
        self.kv
            .put(&self.keys.bgp_status(host), encode(status))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn peers_round_trip_and_a_misplaced_record_is_ignored() {
        let store = Store::in_memory();
        let peer = BgpPeer {
            ip: "198.18.0.1".parse().unwrap(),
            asn: 64513,
            node: Some("h1".into()),
        };
        assert!(store.put_bgp_peer(&peer).await.unwrap());
        assert!(!store.put_bgp_peer(&peer).await.unwrap());
        // The same record under the global key is not a global peer.
        let global = store.keys.bgp_peer(peer.ip, None);
        store.kv.put(&global, encode(&peer)).await.unwrap();
        assert_eq!(store.bgp_peers().await.unwrap(), vec![peer.clone()]);
        assert!(store.delete_bgp_peer(peer.ip, Some("h1")).await.unwrap());
        assert!(!store.delete_bgp_peer(peer.ip, Some("h1")).await.unwrap());
    }

    #[tokio::test]
    async fn settings_default_to_mesh_and_64512() {
        let store = Store::in_memory();
        let settings = store.bgp_settings().await.unwrap();
        assert!(settings.config.mesh);
        assert_eq!(settings.config.asn(), 64512);
        assert!(settings.nodes.is_empty() && settings.peers.is_empty());
    }
}
