//! Address arithmetic of pools and blocks. Pure functions, no I/O.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::model::{Block, Handle, Pool};

/// Whether the pool's block prefix cuts it into blocks: always so for a
/// pool tabby made, not for any record read back from the datastore.
pub fn is_sound(pool: &Pool) -> bool {
    (pool.cidr.prefix_len()..=32).contains(&pool.block_prefix)
}

/// The block of `pool` that contains `ip`.
pub fn block_containing(pool: &Pool, ip: Ipv4Addr) -> Ipv4Net {
    Ipv4Net::new(ip, pool.block_prefix)
        .expect("block prefix validated when the pool was made")
        .trunc()
}

/// Every block the pool is cut into, in address order.
pub fn blocks_of(pool: &Pool) -> Vec<Ipv4Net> {
    pool.cidr
        .subnets(pool.block_prefix)
        .expect("block prefix validated when the pool was made")
        .collect()
}

pub fn size(cidr: &Ipv4Net) -> u64 {
    1u64 << (32 - cidr.prefix_len())
}

impl Block {
    pub fn new(cidr: Ipv4Net, pool: Ipv4Net, affinity: Option<String>) -> Self {
        Block {
            cidr,
            pool,
            affinity,
            allocations: Default::default(),
        }
    }

    pub fn ordinal(&self, ip: Ipv4Addr) -> Option<u32> {
        self.cidr
            .contains(&ip)
            .then(|| u32::from(ip) - u32::from(self.cidr.network()))
    }

    pub fn address(&self, ordinal: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + ordinal)
    }

    pub fn first_free(&self) -> Option<u32> {
        // u64: a /0 block read from a corrupt record has 2^32 addresses.
        (0..size(&self.cidr))
            .map(|ord| ord as u32)
            .find(|ord| !self.allocations.contains_key(ord))
    }

    pub fn holder(&self, ip: Ipv4Addr) -> Option<&Handle> {
        self.ordinal(ip).and_then(|ord| self.allocations.get(&ord))
    }

    pub fn is_full(&self) -> bool {
        self.allocations.len() as u64 >= size(&self.cidr)
    }

    /// Allocated addresses with their holders, in address order.
    pub fn allocated(&self) -> impl Iterator<Item = (Ipv4Addr, &Handle)> {
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
        let blocks = blocks_of(&p);
        assert_eq!(blocks.len(), 64);
        assert_eq!(blocks[1].to_string(), "198.18.64.64/26");
        let ip: Ipv4Addr = "198.18.65.70".parse().unwrap();
        assert_eq!(block_containing(&p, ip).to_string(), "198.18.65.64/26");
    }

    #[test]
    fn ordinals_round_trip_and_first_free_skips_taken() {
        let mut b = Block::new(
            "198.18.64.64/26".parse().unwrap(),
            "198.18.64.0/20".parse().unwrap(),
            None,
        );
        let ip: Ipv4Addr = "198.18.64.66".parse().unwrap();
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
