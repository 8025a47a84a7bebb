//! Allocate and release across four hosts sharing one store: no address
//! is ever given twice, none is lost, and the pool's count adds up. The
//! same, address for address, for an IPv4 and an IPv6 pool.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use proptest::prelude::*;
use tabby::ipam::{self, Ipam};
use tabby::model::{Handle, Pool};
use tabby::store::memory::MemoryKv;
use tabby::store::{self, Expect, KeyStream, Kv, LeaseGuard, Store, Versioned};

const HOSTS: [&str; 4] = ["h0", "h1", "h2", "h3"];
/// 32 addresses in 4 blocks of 8, in either family: small enough that
/// hosts run out of their own blocks and borrow, and that the pool fills.
const POOLS: [(&str, u8); 2] = [("198.18.80.0/27", 29), ("2001:2:0:80::/123", 125)];
const SIZE: usize = 32;
const BLOCK_SIZE: usize = 8;

/// The in-memory store, yielding to the scheduler before each call as a
/// proptest-chosen schedule says: that is where concurrent hosts
/// interleave between a read and its compare-and-swap.
struct YieldingKv {
    inner: MemoryKv,
    schedule: Vec<u8>,
    step: AtomicUsize,
}

impl YieldingKv {
    async fn pause(&self) {
        if self.schedule.is_empty() {
            return;
        }
        let i = self.step.fetch_add(1, Ordering::Relaxed);
        for _ in 0..self.schedule[i % self.schedule.len()] {
            tokio::task::yield_now().await;
        }
    }
}

#[async_trait]
impl Kv for YieldingKv {
    async fn get(&self, key: &str) -> Result<Option<Versioned<Vec<u8>>>, store::Error> {
        self.pause().await;
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned<Vec<u8>>)>, store::Error> {
        self.pause().await;
        self.inner.list(prefix).await
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), store::Error> {
        self.pause().await;
        self.inner.put(key, value).await
    }
    async fn swap(
        &self,
        key: &str,
        expect: Expect,
        value: Option<Vec<u8>>,
    ) -> Result<bool, store::Error> {
        self.pause().await;
        self.inner.swap(key, expect, value).await
    }
    async fn swap_all(&self, swaps: Vec<store::Swap>) -> Result<bool, store::Error> {
        self.pause().await;
        self.inner.swap_all(swaps).await
    }
    async fn delete(&self, key: &str) -> Result<bool, store::Error> {
        self.pause().await;
        self.inner.delete(key).await
    }
    async fn put_leased(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: i64,
    ) -> Result<LeaseGuard, store::Error> {
        self.inner.put_leased(key, value, ttl).await
    }
    async fn create_leased(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: i64,
    ) -> Result<Option<LeaseGuard>, store::Error> {
        self.inner.create_leased(key, value, ttl).await
    }
    async fn watch(&self, prefix: &str, from: i64) -> Result<KeyStream, store::Error> {
        self.inner.watch(prefix, from).await
    }
    async fn revision(&self, within: &str) -> Result<i64, store::Error> {
        self.inner.revision(within).await
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// The next free address by preference.
    Auto,
    /// A given address (an ordinal in the pool).
    Requested(u8),
    /// One of the addresses this host holds (an index into them).
    ReleaseOwn(u8),
    /// An address nobody holds: releasing it changes nothing.
    ReleaseFree(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Auto),
        2 => (0..SIZE as u8).prop_map(Op::Requested),
        3 => any::<u8>().prop_map(Op::ReleaseOwn),
        1 => (0..SIZE as u8).prop_map(Op::ReleaseFree),
    ]
}

/// The `ordinal`th address of the pool.
fn address(pool: &Pool, ordinal: u8) -> IpAddr {
    match pool.cidr.network() {
        IpAddr::V4(base) => (u32::from(base) + u32::from(ordinal)).to_be_bytes().into(),
        IpAddr::V6(base) => (u128::from(base) + u128::from(ordinal))
            .to_be_bytes()
            .into(),
    }
}

async fn setup(family: usize, schedule: Vec<u8>) -> (Store, Pool, Vec<Ipam>) {
    let (cidr, block) = POOLS[family];
    let kv = YieldingKv {
        inner: MemoryKv::new(),
        schedule,
        step: AtomicUsize::new(0),
    };
    let store = Store::new(Arc::new(kv), "/tabby");
    let hosts: Vec<Ipam> = HOSTS.iter().map(|h| Ipam::new(store.clone(), h)).collect();
    let pool = hosts[0]
        .add_pool(cidr.parse().unwrap(), block)
        .await
        .unwrap();
    (store, pool, hosts)
}

/// Every allocation in the store, by address, with its holder's host;
/// checks on the way that blocks are disjoint pieces of the pool, that
/// each allocation lies inside its block, and that the free addresses
/// (in claimed blocks and unclaimed ones) and the allocated add up to
/// the pool.
async fn allocated(store: &Store, pool: &Pool) -> BTreeMap<IpAddr, String> {
    let mut seen_blocks = BTreeSet::new();
    let mut out = BTreeMap::new();
    let block_size = BLOCK_SIZE;
    let mut free = 0;
    for block in store.blocks().await.unwrap() {
        let block = block.value;
        assert!(
            pool.cidr.contains(&block.cidr),
            "{} outside pool",
            block.cidr
        );
        assert_eq!(block.cidr.prefix_len(), pool.block_prefix);
        assert!(seen_blocks.insert(block.cidr), "block {} twice", block.cidr);
        for (ip, handle) in block.allocated() {
            assert!(block.cidr.contains(&ip), "{ip} outside {}", block.cidr);
            assert!(out.insert(ip, handle.host.clone()).is_none(), "{ip} twice");
        }
        free += block_size - block.allocations.len();
    }
    free += (SIZE / block_size - seen_blocks.len()) * block_size;
    assert_eq!(free + out.len(), SIZE, "free and allocated do not add up");
    out
}

/// Applies one op in a step-wise run, checking its outcome against the
/// model (address -> host index).
async fn step(hosts: &[Ipam], pool: &Pool, model: &mut BTreeMap<IpAddr, usize>, h: usize, op: Op) {
    let ipam = &hosts[h];
    let handle = Handle::for_host(HOSTS[h]);
    match op {
        Op::Auto => match ipam.allocate(pool, None, handle).await {
            Ok(ip) => {
                assert!(model.insert(ip, h).is_none(), "{ip} given twice");
            }
            Err(ipam::Error::Exhausted { .. }) => {
                assert_eq!(model.len(), SIZE, "exhausted with free addresses")
            }
            Err(e) => panic!("allocate: {e}"),
        },
        Op::Requested(ord) => {
            let ip = address(pool, ord);
            let got = ipam.allocate(pool, Some(ip), handle).await;
            match (got, model.contains_key(&ip)) {
                (Ok(got), false) => {
                    assert_eq!(got, ip);
                    model.insert(ip, h);
                }
                (Err(ipam::Error::InUse { .. }), true) => {}
                (got, held) => panic!("{ip} requested (held: {held}): {got:?}"),
            }
        }
        Op::ReleaseOwn(i) => {
            let own: Vec<IpAddr> = model
                .iter()
                .filter(|(_, o)| **o == h)
                .map(|(ip, _)| *ip)
                .collect();
            if let Some(ip) = own.get(i as usize % own.len().max(1)) {
                let old = ipam.release(*ip).await.unwrap();
                assert_eq!(old.map(|o| o.host), Some(HOSTS[h].to_string()));
                model.remove(ip);
            }
        }
        Op::ReleaseFree(ord) => {
            let ip = address(pool, ord);
            if !model.contains_key(&ip) {
                assert_eq!(ipam.release(ip).await.unwrap(), None, "{ip} was free");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// One op at a time, host chosen per op: the store always says exactly
    /// what the model holds, and the pool is exhausted only when full.
    #[test]
    fn stepwise_hosts_match_the_model(
        family in 0..POOLS.len(),
        ops in prop::collection::vec((0..HOSTS.len(), op()), 1..80),
    ) {
        crate::run(async {
            let (store, pool, hosts) = setup(family, vec![]).await;
            let mut model = BTreeMap::new();
            for (h, op) in ops {
                step(&hosts, &pool, &mut model, h, op).await;
                let expected: BTreeMap<IpAddr, String> =
                    model.iter().map(|(ip, h)| (*ip, HOSTS[*h].to_string())).collect();
                assert_eq!(allocated(&store, &pool).await, expected);
            }
        });
    }

    /// Four hosts run their op sequences concurrently, interleaved at every
    /// store call by a random schedule: what each host believes it holds is
    /// disjoint from the others, and together exactly what the store holds.
    #[test]
    fn concurrent_hosts_never_share_or_lose(
        family in 0..POOLS.len(),
        ops in prop::collection::vec(prop::collection::vec(op(), 0..16), HOSTS.len()),
        schedule in prop::collection::vec(0u8..4, 1..32),
    ) {
        crate::run(async {
            let (store, pool, hosts) = setup(family, schedule).await;
            let runs = hosts.iter().zip(ops).enumerate().map(|(h, (ipam, ops))| {
                let pool = pool.clone();
                async move { host_run(ipam, &pool, h, ops).await }
            });
            let held: Vec<BTreeSet<IpAddr>> = futures::future::join_all(runs).await;
            let mut expected = BTreeMap::new();
            for (h, ips) in held.iter().enumerate() {
                for ip in ips {
                    let other = expected.insert(*ip, HOSTS[h].to_string());
                    assert!(other.is_none(), "{ip} held by {other:?} and {}", HOSTS[h]);
                }
            }
            assert_eq!(allocated(&store, &pool).await, expected);
        });
    }
}

/// One host's ops; returns what it holds at the end.
async fn host_run(ipam: &Ipam, pool: &Pool, h: usize, ops: Vec<Op>) -> BTreeSet<IpAddr> {
    let mut held = BTreeSet::new();
    for op in ops {
        let handle = Handle::for_host(HOSTS[h]);
        let requested = match op {
            Op::Auto => None,
            Op::Requested(ord) => Some(address(pool, ord)),
            Op::ReleaseOwn(i) => {
                let Some(ip) = held.iter().nth(i as usize % held.len().max(1)).copied() else {
                    continue;
                };
                let old = ipam.release(ip).await.unwrap();
                assert_eq!(old.map(|o| o.host).as_deref(), Some(HOSTS[h]), "{ip} lost");
                held.remove(&ip);
                continue;
            }
            // Another host may take it meanwhile: not a free address here.
            Op::ReleaseFree(_) => continue,
        };
        match ipam.allocate(pool, requested, handle).await {
            Ok(ip) => assert!(held.insert(ip), "{ip} given to {} twice", HOSTS[h]),
            Err(
                ipam::Error::Exhausted { .. }
                | ipam::Error::InUse { .. }
                | ipam::Error::Contention(_),
            ) => {}
            Err(e) => panic!("allocate: {e}"),
        }
    }
    held
}
