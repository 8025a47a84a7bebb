//! Address management over the datastore: pools cut into blocks that hosts
//! claim (affinity), /32 allocations with handles, all by compare-and-swap
//! so that hosts never need a global lock.

mod allocate;
pub mod block;
pub mod check;
mod pools;
mod release;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{Handle, Pool};
use crate::store::{self, Store};

pub use release::Released;

pub const DEFAULT_BLOCK_PREFIX: u8 = 26;
/// Calico's default for IPv6: 64 addresses, as a /26 holds.
pub const DEFAULT_BLOCK_PREFIX_V6: u8 = 122;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("pool {pool} is exhausted: all {size} addresses are allocated")]
    Exhausted { pool: IpNet, size: u128 },
    #[error("address {ip} is already in use by {holder}")]
    InUse { ip: IpAddr, holder: String },
    #[error("address {ip} is not in pool {pool}")]
    NotInPool { ip: IpAddr, pool: IpNet },
    #[error("no pool {0}: add it with `tabby pool add {0}`")]
    NoSuchPool(IpNet),
    #[error("pool {0} already exists")]
    PoolExists(IpNet),
    #[error("pool {cidr} overlaps existing pool {other}")]
    Overlap { cidr: IpNet, other: IpNet },
    #[error("block size /{block} is invalid for pool {pool}: it must cut the pool into blocks")]
    BadBlockSize { pool: IpNet, block: u8 },
    #[error("the block record for {key} holds block {found}: the record is corrupt")]
    CorruptBlock { key: IpNet, found: IpNet },
    #[error(transparent)]
    Invalid(#[from] crate::validate::ValidationError),
    #[error("no address pool exists: add one with `tabby pool add CIDR` or pass --subnet")]
    NoPools,
    #[error("no IPv6 address pool exists: add one with `tabby pool add CIDR` or pass --subnet")]
    NoPools6,
    #[error("pool {pool} still has {count} allocated address(es); release them first")]
    PoolInUse { pool: IpNet, count: usize },
    #[error("gave up after {0} conflicting concurrent updates; try again")]
    Contention(usize),
}

/// Describes a handle for error messages and tables.
pub fn describe(handle: &Handle) -> String {
    let mut parts = Vec::new();
    if let Some(container) = &handle.container {
        parts.push(format!("container {container}"));
    }
    if let Some(endpoint) = &handle.endpoint {
        parts.push(format!("endpoint {}", short_id(endpoint)));
    }
    parts.push(format!("on host {}", handle.host));
    parts.join(" ")
}

pub fn short_id(id: &str) -> &str {
    crate::validate::prefix(id, 12)
}

/// IPAM as seen from one host: that host claims blocks and owns handles.
#[derive(Clone)]
pub struct Ipam {
    store: Store,
    host: String,
}

impl Ipam {
    pub fn new(store: Store, host: &str) -> Self {
        Ipam {
            store,
            host: host.to_string(),
        }
    }

    pub async fn pool(&self, cidr: &IpNet) -> Result<Pool, Error> {
        self.store
            .pool(cidr)
            .await?
            .map(|p| p.value)
            .ok_or(Error::NoSuchPool(*cidr))
    }

    /// The configured default pool, else the first pool of the family
    /// added.
    pub async fn default_pool(&self, configured: Option<IpNet>, v6: bool) -> Result<Pool, Error> {
        if let Some(cidr) = configured {
            return self.pool(&cidr).await;
        }
        let mut pools = self.pools().await?;
        pools.retain(|p| p.cidr.addr().is_ipv6() == v6);
        pools.sort_by_key(|p| (p.created, p.cidr));
        pools.into_iter().next().ok_or(match v6 {
            false => Error::NoPools,
            true => Error::NoPools6,
        })
    }

    pub async fn pools(&self) -> Result<Vec<Pool>, Error> {
        Ok(self
            .store
            .pools()
            .await?
            .into_iter()
            .map(|p| p.value)
            .collect())
    }

    /// Removes a pool and its (empty) blocks; refused while any address of
    /// it is allocated.
    pub async fn remove_pool(&self, cidr: &IpNet) -> Result<(), Error> {
        self.pool(cidr).await?;
        let blocks: Vec<_> = self
            .store
            .blocks()
            .await?
            .into_iter()
            .filter(|b| b.value.pool == *cidr)
            .collect();
        let count: usize = blocks.iter().map(|b| b.value.allocations.len()).sum();
        if count > 0 {
            return Err(Error::PoolInUse { pool: *cidr, count });
        }
        for block in blocks {
            let expect = store::Expect::Revision(block.revision);
            if !self
                .store
                .swap_block(&block.value.cidr, expect, None)
                .await?
            {
                return Err(Error::PoolInUse {
                    pool: *cidr,
                    count: 1,
                });
            }
        }
        self.store.delete_pool(cidr).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;
