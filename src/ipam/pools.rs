//! Adding pools: every check that keeps a pool from cutting hosts off,
//! and the overlap check made atomic by the store's pool index.

use std::net::IpAddr;

use chrono::Utc;
use ipnet::IpNet;

use super::{Error, Ipam};
use crate::model::{Pool, VxlanMode};
use crate::validate;

/// Concurrent adds each lose at most once per pool added meanwhile.
const ADD_ATTEMPTS: usize = 16;

impl Ipam {
    /// Adds a pool, refusing reserved ranges, pools holding a node's or an
    /// etcd member's address, and overlaps. The block prefix is clamped to
    /// the pool's own prefix so a small pool is one block. Nothing is
    /// written unless every check passes.
    pub async fn add_pool(&self, cidr: IpNet, block_prefix: u8) -> Result<Pool, Error> {
        self.add_pool_with(cidr, block_prefix, VxlanMode::Never)
            .await
    }

    /// `add_pool` with an encapsulation mode.
    pub async fn add_pool_with(
        &self,
        cidr: IpNet,
        block_prefix: u8,
        vxlan: VxlanMode,
    ) -> Result<Pool, Error> {
        let mut pool = validate_pool(cidr, block_prefix)?;
        refuse_ipv6_vxlan(cidr, vxlan)?;
        pool.vxlan = vxlan;
        let etcd = self.store.etcd_addresses().iter().map(|a| IpAddr::V4(*a));
        validate::pool_clear_of(cidr, "an etcd endpoint", etcd)?;
        for node in self.store.nodes().await? {
            let what = format!("node {}", node.hostname);
            validate::pool_clear_of(cidr, &what, [IpAddr::V4(node.ip)])?;
        }
        for _ in 0..ADD_ATTEMPTS {
            // The index first: a pool added after this read changes it, and
            // then the transaction below writes nothing.
            let index = self.store.pool_index().await?;
            for existing in self.store.pools().await? {
                let other = existing.value.cidr;
                if other == cidr {
                    return Err(Error::PoolExists(cidr));
                }
                if other.contains(&cidr) || cidr.contains(&other) {
                    return Err(Error::Overlap { cidr, other });
                }
            }
            if self.store.create_pool(&pool, index).await? {
                return Ok(pool);
            }
        }
        Err(Error::Contention(ADD_ATTEMPTS))
    }

    /// Changes a pool's encapsulation mode, in use or not: every agent
    /// converges its tunnel and routes to it. The pool as it is now.
    pub async fn set_pool_vxlan(&self, cidr: &IpNet, vxlan: VxlanMode) -> Result<Pool, Error> {
        refuse_ipv6_vxlan(*cidr, vxlan)?;
        for _ in 0..ADD_ATTEMPTS {
            let Some(current) = self.store.pool(cidr).await? else {
                return Err(Error::NoSuchPool(*cidr));
            };
            let mut pool = current.value;
            if pool.vxlan == vxlan {
                return Ok(pool);
            }
            pool.vxlan = vxlan;
            if self.store.update_pool(&pool, current.revision).await? {
                return Ok(pool);
            }
        }
        Err(Error::Contention(ADD_ATTEMPTS))
    }

    /// The pool with exactly this CIDR, created if none overlaps it.
    pub async fn ensure_pool(&self, cidr: IpNet, block_prefix: u8) -> Result<Pool, Error> {
        if let Some(pool) = self.store.pool(&cidr).await? {
            return Ok(pool.value);
        }
        match self.add_pool(cidr, block_prefix).await {
            Err(Error::PoolExists(_)) => self
                .store
                .pool(&cidr)
                .await?
                .map(|p| p.value)
                .ok_or(Error::NoSuchPool(cidr)),
            other => other,
        }
    }
}

/// The tunnel carries IPv4 only: an IPv6 pool it was asked for would
/// silently go unencapsulated.
fn refuse_ipv6_vxlan(cidr: IpNet, vxlan: VxlanMode) -> Result<(), Error> {
    match (cidr, vxlan) {
        (IpNet::V6(_), VxlanMode::CrossSubnet | VxlanMode::Always) => {
            Err(crate::validate::ValidationError::Pool {
                cidr,
                reason: "VXLAN carries IPv4 pools only: use --vxlan never".into(),
            }
            .into())
        }
        _ => Ok(()),
    }
}

fn validate_pool(cidr: IpNet, block_prefix: u8) -> Result<Pool, Error> {
    validate::pool(cidr, block_prefix)?;
    Ok(Pool {
        cidr,
        block_prefix: block_prefix.max(cidr.prefix_len()),
        created: Utc::now(),
        vxlan: VxlanMode::Never,
    })
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
