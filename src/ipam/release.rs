//! Release of addresses, and rewriting their handles: each a
//! compare-and-swap on the block that holds the address.

use std::net::IpAddr;

use super::allocate::{MAX_ATTEMPTS, backoff};
use super::{Error, Ipam};
use crate::model::{Block, Handle};
use crate::store::{Expect, Versioned};

/// What `release_own` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    Released(Handle),
    /// Nobody held it (already released: ReleaseAddress is idempotent).
    Free,
    /// Another host holds it; left alone.
    Foreign(Handle),
}

impl Ipam {
    /// Releases an address whoever holds it. Idempotent: releasing a free
    /// address is not an error. Returns the handle that held it. For
    /// operators (`tabby host remove`-like paths) and tests; Docker's
    /// ReleaseAddress goes through `release_own`.
    pub async fn release(&self, ip: IpAddr) -> Result<Option<Handle>, Error> {
        self.modify_allocation(ip, |_| None).await
    }

    /// Releases `ip` only if this host holds it: an address another host
    /// holds (given to it after a repair freed ours, say) is left alone.
    pub async fn release_own(&self, ip: IpAddr) -> Result<Released, Error> {
        // The block read here is the one the release swaps, unless it
        // changed meanwhile: one read and one write on Docker's path.
        let Some(current) = self.find_block(ip).await? else {
            return Ok(Released::Free);
        };
        let Some(holder) = current.value.holder(ip).cloned() else {
            return Ok(Released::Free);
        };
        if holder.host != self.host {
            return Ok(Released::Foreign(holder));
        }
        Ok(match self.release_held(ip, &holder, Some(current)).await? {
            true => Released::Released(holder),
            // Changed meanwhile: released, or re-given, by someone else.
            false => match self.holder(ip).await? {
                Some(other) if other.host != self.host => Released::Foreign(other),
                _ => Released::Free,
            },
        })
    }

    /// Releases `ip` only while `expected` still holds it, so a repair
    /// never frees an address that a new container has just been given.
    /// A write whose answer was lost is recognised on reading back: the
    /// slot is empty, and the release counts as done.
    pub async fn release_if_held_by(&self, ip: IpAddr, expected: &Handle) -> Result<bool, Error> {
        self.release_held(ip, expected, None).await
    }

    /// `release_if_held_by`, starting from `read` when the caller has just
    /// read the block.
    async fn release_held(
        &self,
        ip: IpAddr,
        expected: &Handle,
        mut read: Option<Versioned<Block>>,
    ) -> Result<bool, Error> {
        let mut tried = false;
        for attempt in 0..MAX_ATTEMPTS {
            let current = match read.take() {
                Some(block) => block,
                None => match self.find_block(ip).await? {
                    Some(block) => block,
                    None => return Ok(tried),
                },
            };
            let mut block = current.value;
            let ordinal = block.ordinal(ip).expect("found by address");
            match block.allocations.get(&ordinal) {
                Some(h) if h == expected => {}
                None => return Ok(tried),
                Some(_) => return Ok(false),
            }
            block.allocations.remove(&ordinal);
            let expect = Expect::Revision(current.revision);
            tried = true;
            match self
                .store
                .swap_block(&block.cidr, expect, Some(&block))
                .await
            {
                Ok(true) => return Ok(true),
                Ok(false) => backoff(attempt).await,
                Err(err) => {
                    let now = self.store.block(&block.cidr).await.ok().flatten();
                    if now.is_some_and(|b| b.value.holder(ip) != Some(expected)) {
                        return Ok(true);
                    }
                    return Err(err.into());
                }
            }
        }
        Err(Error::Contention(MAX_ATTEMPTS))
    }

    /// Rewrites the handle of an allocated address (to add the endpoint or
    /// container once they are known). Returns the old handle, or None if
    /// the address is not allocated.
    pub async fn update_handle(
        &self,
        ip: IpAddr,
        update: impl Fn(&Handle) -> Handle,
    ) -> Result<Option<Handle>, Error> {
        self.modify_allocation(ip, |h| Some(update(h))).await
    }

    async fn modify_allocation(
        &self,
        ip: IpAddr,
        change: impl Fn(&Handle) -> Option<Handle>,
    ) -> Result<Option<Handle>, Error> {
        for attempt in 0..MAX_ATTEMPTS {
            let Some(current) = self.find_block(ip).await? else {
                return Ok(None);
            };
            let mut block = current.value;
            let ordinal = block.ordinal(ip).expect("found by address");
            let Some(old) = block.allocations.get(&ordinal).cloned() else {
                return Ok(None);
            };
            match change(&old) {
                Some(new) => block.allocations.insert(ordinal, new),
                None => block.allocations.remove(&ordinal),
            };
            let expect = Expect::Revision(current.revision);
            if self
                .store
                .swap_block(&block.cidr, expect, Some(&block))
                .await?
            {
                return Ok(Some(old));
            }
            backoff(attempt).await;
        }
        Err(Error::Contention(MAX_ATTEMPTS))
    }
}

impl Ipam {
    /// Releases every address `host` holds and gives up its blocks' affinity
    /// (an emptied block is deleted). For hosts that are gone for good.
    /// Returns (addresses released, blocks given up).
    pub async fn release_host(&self, host: &str) -> Result<(usize, usize), Error> {
        let (mut released, mut freed) = (0, 0);
        for current in self.store.blocks().await? {
            let mut current = current;
            for attempt in 0..MAX_ATTEMPTS {
                let mut block = current.value.clone();
                let before = block.allocations.len();
                block.allocations.retain(|_, h| h.host != host);
                let owned = block.affinity.as_deref() == Some(host);
                if before == block.allocations.len() && !owned {
                    break;
                }
                if owned {
                    block.affinity = None;
                }
                let value = (!block.allocations.is_empty() || !owned).then_some(&block);
                let expect = Expect::Revision(current.revision);
                if self.store.swap_block(&block.cidr, expect, value).await? {
                    released += before - block.allocations.len();
                    freed += owned as usize;
                    break;
                }
                backoff(attempt).await;
                match self.store.block(&block.cidr).await? {
                    Some(fresh) => current = fresh,
                    None => break,
                }
            }
        }
        Ok((released, freed))
    }
}
