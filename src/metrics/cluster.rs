//! Gauges of the cluster as a resync pass reads it: nodes up and down,
//! and each pool's addresses allocated and free.

use std::collections::HashSet;

use super::{PoolLabels, get};
use crate::model::{Block, Node, Pool};

pub fn record(pools: &[Pool], blocks: &[Block], nodes: &[Node], alive: &HashSet<String>) {
    let m = get();
    let up = nodes.iter().filter(|n| alive.contains(&n.hostname)).count();
    m.nodes_up.set(up as i64);
    m.nodes_down.set((nodes.len() - up) as i64);
    for pool in pools {
        let allocated: usize = blocks
            .iter()
            .filter(|b| b.pool == pool.cidr)
            .map(|b| b.allocations.len())
            .sum();
        let size = crate::ipam::block::size(&pool.cidr);
        let labels = PoolLabels {
            pool: pool.cidr.to_string(),
        };
        m.pool_allocated
            .get_or_create(&labels)
            .set(allocated as i64);
        m.pool_free
            .get_or_create(&labels)
            .set(i64::try_from(size.saturating_sub(allocated as u128)).unwrap_or(i64::MAX));
    }
}
