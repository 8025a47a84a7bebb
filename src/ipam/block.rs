//! Address arithmetic of pools and blocks, the same for both families:
//! addresses are numbers (u128) offset from a network address. Pure
//! functions, no I/O.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::model::{Block, Handle, Pool};

/// The longest prefix of the family: 32 or 128.
pub fn max_prefix(cidr: &IpNet) -> u8 {
    cidr.max_prefix_len()
}

/// Whether the pool's block prefix cuts it into blocks: always so for a
/// pool tabby made, not for any record read back from the datastore.
pub fn is_sound(pool: &Pool) -> bool {
    (pool.cidr.prefix_len()..=max_prefix(&pool.cidr)).contains(&pool.block_prefix)
}

/// The block of `pool` that contains `ip`.
pub fn block_containing(pool: &Pool, ip: IpAddr) -> IpNet {
    IpNet::new(ip, pool.block_prefix)
        .expect("block prefix validated when the pool was made")
        .trunc()
}

/// How many blocks the pool is cut into, saturating (an IPv6 pool may
/// have more than u128 can count only in theory: /0 into /128s).
pub fn block_count(pool: &Pool) -> u128 {
    let bits = pool.block_prefix.saturating_sub(pool.cidr.prefix_len());
    1u128.checked_shl(bits.into()).unwrap_or(u128::MAX)
}

/// The `index`th block of the pool, in address order. Computed, never
/// listed: an IPv6 pool has far too many blocks to list.
pub fn nth_block(pool: &Pool, index: u128) -> IpNet {
    let step = size(&IpNet::new(pool.cidr.addr(), pool.block_prefix).expect("sound pool"));
    let first = number(pool.cidr.network());
    let addr = address_of(pool.cidr.network(), first + index * step);
    IpNet::new(addr, pool.block_prefix).expect("sound pool")
}

/// A block of `pool` that nobody claimed, if any. Hosts start their
/// search at different places so that they rarely race for the same one;
/// at most one more than the claimed blocks is looked at.
pub fn free_block(pool: &Pool, claimed: &HashSet<IpNet>, host: &str) -> Option<IpNet> {
    let count = block_count(pool);
    // Stable across runs and builds, unlike the std hasher.
    let start = u128::from(crate::hash::fnv1a(host.as_bytes())) % count;
    let tries = count.min(claimed.len() as u128 + 1);
    (0..tries)
        .map(|k| nth_block(pool, (start + k) % count))
        .find(|cidr| !claimed.contains(cidr))
}

/// Addresses in a CIDR (saturating at u128::MAX for ::/0).
pub fn size(cidr: &IpNet) -> u128 {
    let bits = max_prefix(cidr) - cidr.prefix_len();
    1u128.checked_shl(bits.into()).unwrap_or(u128::MAX)
}

fn number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address `n` in the family of `like`.
fn address_of(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

impl Block {
    pub fn new(cidr: IpNet, pool: IpNet, affinity: Option<String>) -> Self {
        Block {
            cidr,
            pool,
            affinity,
            allocations: Default::default(),
        }
    }

    /// The address's offset in the block. Blocks are at most 2^16
    /// addresses (validated), so an offset always fits a u32.
    pub fn ordinal(&self, ip: IpAddr) -> Option<u32> {
        self.cidr
            .contains(&ip)
            .then(|| number(ip) - number(self.cidr.network()))
            .and_then(|ord| u32::try_from(ord).ok())
    }

    pub fn address(&self, ordinal: u32) -> IpAddr {
        let network = self.cidr.network();
        address_of(network, number(network) + u128::from(ordinal))
    }

    pub fn first_free(&self) -> Option<u32> {
        // Bounded by u32: a corrupt record's huge block is never walked
        // past the offsets a block can hold.
        (0..size(&self.cidr).min(1 << 32))
            .map(|ord| ord as u32)
            .find(|ord| !self.allocations.contains_key(ord))
    }

    pub fn holder(&self, ip: IpAddr) -> Option<&Handle> {
        self.ordinal(ip).and_then(|ord| self.allocations.get(&ord))
    }

    pub fn is_full(&self) -> bool {
        self.allocations.len() as u128 >= size(&self.cidr)
    }

    /// Allocated addresses with their holders, in address order.
    pub fn allocated(&self) -> impl Iterator<Item = (IpAddr, &Handle)> {
        self.allocations
            .iter()
            .map(|(ord, handle)| (self.address(*ord), handle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn pool(cidr: &str, block_prefix: u8) -> Pool {
        Pool {
            cidr: cidr.parse().unwrap(),
            block_prefix,
            created: Utc::now(),
            vxlan: Default::default(),
        }
    }

    #[test]
    fn blocks_cover_the_pool() {
        let p = pool("198.18.64.0/20", 26);
        assert_eq!(block_count(&p), 64);
        assert_eq!(nth_block(&p, 1).to_string(), "198.18.64.64/26");
        assert_eq!(nth_block(&p, 63).to_string(), "198.18.79.192/26");
        let ip: IpAddr = "198.18.65.70".parse().unwrap();
        assert_eq!(block_containing(&p, ip).to_string(), "198.18.65.64/26");
    }

    #[test]
    fn ipv6_blocks_are_computed_not_listed() {
        let p = pool("2001:2:0:1000::/56", 122);
        assert_eq!(block_count(&p), 1 << 66);
        assert_eq!(nth_block(&p, 0).to_string(), "2001:2:0:1000::/122");
        assert_eq!(nth_block(&p, 1).to_string(), "2001:2:0:1000::40/122");
        let last = nth_block(&p, block_count(&p) - 1);
        assert_eq!(last.to_string(), "2001:2:0:10ff:ffff:ffff:ffff:ffc0/122");
        let ip: IpAddr = "2001:2:0:1001::7f".parse().unwrap();
        assert_eq!(
            block_containing(&p, ip).to_string(),
            "2001:2:0:1001::40/122"
        );
        let b = Block::new(block_containing(&p, ip), p.cidr, None);
        assert_eq!(b.ordinal(ip), Some(63));
        assert_eq!(b.address(63), ip);
        assert_eq!(size(&b.cidr), 64);
    }

    #[test]
    fn ordinals_round_trip_and_first_free_skips_taken() {
        let mut b = Block::new(
            "198.18.64.64/26".parse().unwrap(),
            "198.18.64.0/20".parse().unwrap(),
            None,
        );
        let ip: IpAddr = "198.18.64.66".parse().unwrap();
        assert_eq!(b.ordinal(ip), Some(2));
        assert_eq!(b.address(2), ip);
        assert_eq!(b.ordinal("198.18.64.1".parse().unwrap()), None);
        b.allocations.insert(0, Handle::for_host("h"));
        assert_eq!(b.first_free(), Some(1));
        for ord in 0..64 {
            b.allocations.insert(ord, Handle::for_host("h"));
        }
        assert!(b.is_full());
        assert_eq!(b.first_free(), None);
    }
}
