//! Allocation of single addresses (release is in `release`).
//!
//! Order of preference, as in Calico: a free address in a block this host
//! already claimed; else claim a free block; else borrow one address from
//! another host's block. Every write is a compare-and-swap on one block
//! key; a lost race re-reads and tries again.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use tracing::debug;

use super::block::{block_containing, free_block, is_sound, size};
use super::{Error, Ipam, describe};
use crate::model::{Block, Handle, Pool};
use crate::store::{Expect, Versioned};

pub(super) const MAX_ATTEMPTS: usize = 64;

enum Step {
    Done(IpAddr),
    /// Someone else wrote first: re-read and go again.
    Retry,
}

impl Ipam {
    /// Allocates one address of `pool` to `handle`: `requested` if given
    /// (anywhere in the pool, if free), else the next free by preference.
    pub async fn allocate(
        &self,
        pool: &Pool,
        requested: Option<IpAddr>,
        handle: Handle,
    ) -> Result<IpAddr, Error> {
        if !is_sound(pool) {
            return Err(Error::BadBlockSize {
                pool: pool.cidr,
                block: pool.block_prefix,
            });
        }
        if let Some(ip) = requested {
            if !pool.cidr.contains(&ip) {
                return Err(Error::NotInPool {
                    ip,
                    pool: pool.cidr,
                });
            }
        }
        for attempt in 0..MAX_ATTEMPTS {
            let step = match requested {
                Some(ip) => self.try_assign(pool, ip, &handle).await?,
                None => self.try_auto(pool, &handle, attempt > 0).await?,
            };
            match step {
                Step::Done(ip) => return Ok(ip),
                Step::Retry => backoff(attempt).await,
            }
        }
        Err(Error::Contention(MAX_ATTEMPTS))
    }

    async fn try_assign(&self, pool: &Pool, ip: IpAddr, handle: &Handle) -> Result<Step, Error> {
        let cidr = block_containing(pool, ip);
        match self.store.block(&cidr).await? {
            Some(current) if current.value.cidr != cidr => Err(Error::CorruptBlock {
                key: cidr,
                found: current.value.cidr,
            }),
            Some(current) => {
                if let Some(holder) = current.value.holder(ip) {
                    // Our own earlier write, whose answer was lost.
                    if holder == handle {
                        return Ok(Step::Done(ip));
                    }
                    return Err(Error::InUse {
                        ip,
                        holder: describe(holder),
                    });
                }
                self.take(current, ip, handle).await
            }
            // An address in an unclaimed block claims the block for this host.
            None => self.claim(pool, cidr, Some(ip), handle).await,
        }
    }

    async fn try_auto(&self, pool: &Pool, handle: &Handle, retry: bool) -> Result<Step, Error> {
        let blocks: Vec<Versioned<Block>> = self
            .store
            .blocks()
            .await?
            .into_iter()
            .filter(|b| b.value.pool == pool.cidr)
            .collect();
        // A lost race may have been our own write applied on a member that
        // then timed out: taking another address would leak that one.
        if retry {
            let mine = blocks
                .iter()
                .find_map(|b| b.value.allocated().find(|(_, h)| *h == handle));
            if let Some((ip, _)) = mine {
                return Ok(Step::Done(ip));
            }
        }
        let (own, others): (Vec<_>, Vec<_>) = blocks
            .iter()
            .partition(|b| b.value.affinity.as_deref() == Some(self.host.as_str()));

        if let Some(block) = own.into_iter().find(|b| !b.value.is_full()) {
            let ip = block
                .value
                .address(block.value.first_free().expect("not full"));
            return self.take(block.clone(), ip, handle).await;
        }

        let claimed: HashSet<IpNet> = blocks.iter().map(|b| b.value.cidr).collect();
        if let Some(cidr) = free_block(pool, &claimed, &self.host) {
            return self.claim(pool, cidr, None, handle).await;
        }

        if let Some(block) = others.into_iter().find(|b| !b.value.is_full()) {
            let ip = block
                .value
                .address(block.value.first_free().expect("not full"));
            debug!(%ip, block = %block.value.cidr, "borrowing from another host's block");
            return self.take(block.clone(), ip, handle).await;
        }
        Err(Error::Exhausted {
            pool: pool.cidr,
            size: size(&pool.cidr),
        })
    }

    async fn take(
        &self,
        current: Versioned<Block>,
        ip: IpAddr,
        handle: &Handle,
    ) -> Result<Step, Error> {
        let mut block = current.value;
        let ordinal = block.ordinal(ip).expect("address lies in its block");
        block.allocations.insert(ordinal, handle.clone());
        let expect = Expect::Revision(current.revision);
        let written = self
            .store
            .swap_block(&block.cidr, expect, Some(&block))
            .await;
        self.settle(block.cidr, ip, handle, written).await
    }

    /// The outcome of a block write: an error may hide a write that
    /// applied (a timeout, then failover), so read back before failing.
    async fn settle(
        &self,
        cidr: IpNet,
        ip: IpAddr,
        handle: &Handle,
        written: Result<bool, crate::store::Error>,
    ) -> Result<Step, Error> {
        match written {
            Ok(true) => Ok(Step::Done(ip)),
            Ok(false) => Ok(Step::Retry),
            Err(err) => {
                let current = self.store.block(&cidr).await.ok().flatten();
                if current.is_some_and(|b| b.value.holder(ip) == Some(handle)) {
                    debug!(%ip, "write reported failed, but read back as applied");
                    Ok(Step::Done(ip))
                } else {
                    Err(err.into())
                }
            }
        }
    }

    async fn claim(
        &self,
        pool: &Pool,
        cidr: IpNet,
        ip: Option<IpAddr>,
        handle: &Handle,
    ) -> Result<Step, Error> {
        let mut block = Block::new(cidr, pool.cidr, Some(self.host.clone()));
        let ip = ip.unwrap_or(cidr.network());
        let ordinal = block.ordinal(ip).expect("address lies in its block");
        block.allocations.insert(ordinal, handle.clone());
        let written = self
            .store
            .swap_block(&cidr, Expect::Absent, Some(&block))
            .await;
        let step = self.settle(cidr, ip, handle, written).await?;
        if matches!(step, Step::Done(_)) {
            debug!(block = %cidr, host = %self.host, "claimed block");
        }
        Ok(step)
    }

    /// Who holds `ip`, if anyone.
    pub async fn holder(&self, ip: IpAddr) -> Result<Option<Handle>, Error> {
        Ok(self
            .find_block(ip)
            .await?
            .and_then(|b| b.value.holder(ip).cloned()))
    }

    pub(super) async fn find_block(&self, ip: IpAddr) -> Result<Option<Versioned<Block>>, Error> {
        for pool in self.store.pools().await? {
            if is_sound(&pool.value) && pool.value.cidr.contains(&ip) {
                let block = self.store.block(&block_containing(&pool.value, ip)).await?;
                // A record whose block does not hold the address it is
                // stored for is corrupt: nothing is changed through it.
                return Ok(block.filter(|b| b.value.cidr.contains(&ip)));
            }
        }
        Ok(None)
    }
}

pub(super) async fn backoff(attempt: usize) {
    let jitter = (std::process::id() as u64 + attempt as u64 * 7) % 5;
    let millis = (attempt as u64).min(10) + jitter;
    tokio::time::sleep(Duration::from_millis(millis)).await;
}
