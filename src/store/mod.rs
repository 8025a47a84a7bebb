//! The datastore: typed access to tabby's objects in etcd. This module
//! alone knows the key layout (`keys`) and the encoding (JSON).

mod bgp;
mod endpoints;
pub mod etcd;
pub mod etcd_options;
mod galera;
pub mod keys;
pub mod kv;
pub mod listing;
pub mod memory;
mod mysql;
mod nodes;
mod policy_status;
mod pools;

use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::model::BgpSettings;
use crate::model::{Block, Exposure, Network, NetworkDef, NetworkStatus, Node, Profile};
pub use etcd_options::{ConfigError, EtcdOptions};
pub use keys::Keys;
pub use kv::{Expect, KeyStream, Kv, LeaseGuard, MemberHealth, Swap, Versioned};
pub use listing::{Skipped, Validate};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // etcd-client's own text repeats its transport cause in Debug form:
    // these print the message and each cause once, and keep etcd-client's
    // error out of the source chain so it is not printed again after.
    #[error("cannot connect to etcd at {endpoints}: {}", etcd_options::error_chain(.cause))]
    Connect {
        endpoints: String,
        cause: etcd_client::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("etcd: {}", etcd_options::error_chain(.0))]
    Etcd(etcd_client::Error),
    #[error("{0}")]
    Timeout(String),
    #[error("etcd {0}")]
    Watch(String),
    #[error(
        "hostname {host} is taken: {holder} holds its liveness lease (waited {waited}s for it \
         to expire); give this agent another --hostname, or stop the other one"
    )]
    HostnameTaken {
        host: String,
        holder: String,
        waited: i64,
    },
    #[error("corrupt value at {key}: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid record at {key}: {reason}")]
    Invalid { key: String, reason: String },
}

impl From<etcd_client::Error> for Error {
    fn from(err: etcd_client::Error) -> Self {
        Error::Etcd(err)
    }
}

/// Typed datastore over any `Kv`.
#[derive(Clone)]
pub struct Store {
    kv: Arc<dyn Kv>,
    keys: Keys,
    /// The etcd members' IPv4 addresses: no pool may contain them.
    etcd_addresses: Arc<Vec<Ipv4Addr>>,
    skips: listing::SkipLog,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our model types always serialize.
    serde_json::to_vec(value).expect("model types serialize to JSON")
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::Decode {
        key: key.to_string(),
        source,
    })
}

impl Store {
    pub fn new(kv: Arc<dyn Kv>, prefix: &str) -> Self {
        Store {
            kv,
            keys: Keys::new(prefix),
            etcd_addresses: Arc::default(),
            skips: Default::default(),
        }
    }

    pub fn in_memory() -> Self {
        Store::new(Arc::new(memory::MemoryKv::new()), "/tabby")
    }

    pub async fn connect(etcd: &EtcdOptions, prefix: &str) -> Result<Self, Error> {
        let kv = etcd::EtcdKv::connect(etcd).await?;
        let addresses = etcd::ipv4_addresses(&etcd.endpoints).await;
        Ok(Store::new(Arc::new(kv), prefix).with_etcd_addresses(addresses))
    }

    pub fn with_etcd_addresses(mut self, addresses: Vec<Ipv4Addr>) -> Self {
        self.etcd_addresses = Arc::new(addresses);
        self
    }

    pub fn etcd_addresses(&self) -> &[Ipv4Addr] {
        &self.etcd_addresses
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub async fn revision(&self) -> Result<i64, Error> {
        // Under the prefix with its slash: an RBAC role granted on
        // "<prefix>/" must cover the read.
        self.kv.revision(&format!("{}/", self.keys.prefix())).await
    }

    /// Each etcd member's own answer (none for an in-process store).
    pub async fn members(&self) -> Vec<MemberHealth> {
        self.kv.members().await
    }

    async fn get_typed<T: DeserializeOwned + Validate>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, Error> {
        match self.kv.get(key).await? {
            Some(v) => Ok(Some(Versioned {
                value: listing::decode_checked(key, &v.value)?,
                revision: v.revision,
            })),
            None => Ok(None),
        }
    }

    /// The good records under `prefix`; bad ones are skipped and reported
    /// (`skipped`).
    async fn list_typed<T: DeserializeOwned + Validate>(
        &self,
        prefix: &str,
    ) -> Result<Vec<Versioned<T>>, Error> {
        Ok(self
            .list_checked(prefix)
            .await?
            .0
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    async fn swap_typed<T: Serialize>(
        &self,
        key: &str,
        expect: Expect,
        value: Option<&T>,
    ) -> Result<bool, Error> {
        self.kv.swap(key, expect, value.map(encode)).await
    }

    /// Changes anywhere under the prefix, from `from_revision` on.
    pub async fn watch(&self, from_revision: i64) -> Result<KeyStream, Error> {
        self.kv.watch(&self.keys.root(), from_revision).await
    }

    // Blocks

    pub async fn blocks(&self) -> Result<Vec<Versioned<Block>>, Error> {
        self.list_typed(&self.keys.blocks()).await
    }

    pub async fn block(&self, cidr: &IpNet) -> Result<Option<Versioned<Block>>, Error> {
        self.get_typed(&self.keys.block(cidr)).await
    }

    /// Compare-and-swap of one block; `None` deletes it.
    pub async fn swap_block(
        &self,
        cidr: &IpNet,
        expect: Expect,
        block: Option<&Block>,
    ) -> Result<bool, Error> {
        self.swap_typed(&self.keys.block(cidr), expect, block).await
    }

    // Networks

    pub async fn networks(&self) -> Result<Vec<Network>, Error> {
        Ok(unversioned(self.list_typed(&self.keys.networks()).await?))
    }

    pub async fn network(&self, id: &str) -> Result<Option<Network>, Error> {
        Ok(self
            .get_typed(&self.keys.network(id))
            .await?
            .map(|v| v.value))
    }

    pub async fn put_network(&self, network: &Network) -> Result<(), Error> {
        self.kv
            .put(&self.keys.network(&network.id), encode(network))
            .await
    }

    pub async fn delete_network(&self, id: &str) -> Result<bool, Error> {
        self.kv.delete(&self.keys.network(id)).await
    }

    // Nodes

    pub async fn nodes(&self) -> Result<Vec<Node>, Error> {
        Ok(unversioned(self.list_typed(&self.keys.nodes()).await?))
    }

    /// Hostnames whose agent currently holds its liveness lease.
    pub async fn alive_hosts(&self) -> Result<Vec<String>, Error> {
        let prefix = self.keys.alive_nodes();
        Ok(self
            .kv
            .list(&prefix)
            .await?
            .into_iter()
            .map(|(key, _)| key[prefix.len()..].to_string())
            .collect())
    }

    /// Takes the hostname's liveness lease (refused while another live
    /// agent holds it), records the node, and keeps the lease alive until
    /// the guard is dropped. Call it before touching the kernel.
    pub async fn register_node(&self, node: &Node, ttl_secs: i64) -> Result<LeaseGuard, Error> {
        self.claim_hostname(node, ttl_secs).await
    }
}

impl Store {
    pub async fn netdefs(&self) -> Result<Vec<NetworkDef>, Error> {
        Ok(unversioned(self.list_typed(&self.keys.netdefs()).await?))
    }

    pub async fn netdef(&self, name: &str) -> Result<Option<NetworkDef>, Error> {
        Ok(self
            .get_typed(&self.keys.netdef(name))
            .await?
            .map(|v| v.value))
    }

    /// Creates a network definition; false if the name is taken.
    pub async fn create_netdef(&self, def: &NetworkDef) -> Result<bool, Error> {
        self.swap_typed(&self.keys.netdef(&def.name), Expect::Absent, Some(def))
            .await
    }

    pub async fn delete_netdef(&self, name: &str) -> Result<bool, Error> {
        self.kv.delete(&self.keys.netdef(name)).await
    }

    pub async fn netstatuses(&self, name: &str) -> Result<Vec<NetworkStatus>, Error> {
        Ok(unversioned(
            self.list_typed(&self.keys.netstatuses(name)).await?,
        ))
    }

    pub async fn put_netstatus(&self, name: &str, status: &NetworkStatus) -> Result<(), Error> {
        self.kv
            .put(&self.keys.netstatus(name, &status.host), encode(status))
            .await
    }

    pub async fn delete_netstatus(&self, name: &str, host: &str) -> Result<(), Error> {
        self.kv.delete(&self.keys.netstatus(name, host)).await?;
        Ok(())
    }
}

impl Store {
    pub async fn profiles(&self) -> Result<Vec<Profile>, Error> {
        Ok(unversioned(self.list_typed(&self.keys.profiles()).await?))
    }

    pub async fn profile(&self, name: &str) -> Result<Option<Versioned<Profile>>, Error> {
        self.get_typed(&self.keys.profile(name)).await
    }

    /// Writes a profile if it is as expected (absent, or unchanged since read).
    pub async fn swap_profile(&self, profile: &Profile, expect: Expect) -> Result<bool, Error> {
        self.swap_typed(&self.keys.profile(&profile.name), expect, Some(profile))
            .await
    }

    pub async fn delete_profile(&self, name: &str) -> Result<bool, Error> {
        self.kv.delete(&self.keys.profile(name)).await
    }
}

impl Store {
    pub async fn exposures(&self) -> Result<Vec<Exposure>, Error> {
        Ok(unversioned(self.list_typed(&self.keys.exposures()).await?))
    }

    /// Records an exposure; false if the same one exists.
    pub async fn create_exposure(&self, exposure: &Exposure) -> Result<bool, Error> {
        self.swap_typed(
            &self.keys.exposure(&exposure.id()),
            Expect::Absent,
            Some(exposure),
        )
        .await
    }

    pub async fn delete_exposure(&self, id: &str) -> Result<bool, Error> {
        self.kv.delete(&self.keys.exposure(id)).await
    }
}

fn unversioned<T>(items: Vec<Versioned<T>>) -> Vec<T> {
    items.into_iter().map(|v| v.value).collect()
}
