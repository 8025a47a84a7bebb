//! Whatever sits in etcd: the input is cut into records (a kind byte, a
//! key name, a value), written to the in-memory store, then read back by
//! every typed read and used by IPAM. Errors are fine; panics are not.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tabby::ipam::Ipam;
use tabby::model::{
    Block, Endpoint, Exposure, Handle, MysqlCluster, NetworkDef, Node, Pool, Profile,
};
use tabby::store::memory::MemoryKv;
use tabby::store::{Kv, Store};

/// Every prefix tabby lists records under, from the store's own layout.
fn prefixes() -> &'static [String] {
    static PREFIXES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    PREFIXES.get_or_init(|| tabby::store::Keys::new("/tabby").record_prefixes())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    // Paused time: IPAM's retry backoffs cost no wall time.
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
    })
}

/// Records separated by 0xff; in each, the first byte picks the kind and
/// a 0x00 separates the key name from the value.
fn records(data: &[u8]) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    data.split(|b| *b == 0xff).filter_map(|rec| {
        let (kind, rest) = rec.split_first()?;
        let (name, value) = match rest.iter().position(|b| *b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&[][..], rest),
        };
        let prefix = &prefixes()[*kind as usize % prefixes().len()];
        let name = String::from_utf8_lossy(name);
        Some((format!("{prefix}{name}"), value.to_vec()))
    })
}

async fn exercise(data: &[u8]) {
    let kv = Arc::new(MemoryKv::new());
    for (key, value) in records(data).take(16) {
        kv.put(&key, value).await.expect("memory store");
    }
    let store = Store::new(kv, "/tabby");
    let _ = store.blocks().await;
    let _ = store.networks().await;
    let _ = store.endpoints().await;
    let _ = store.host_endpoints("h0").await;
    let _ = store.nodes().await;
    let _ = store.alive_hosts().await;
    let _ = store.node_statuses().await;
    let _ = store.netdefs().await;
    let _ = store.netstatuses("n").await;
    let _ = store.profiles().await;
    let _ = store.exposures().await;
    let _ = store.mysql_clusters().await;
    let ipam = Ipam::new(store.clone(), "h0");
    let _ = ipam.default_pool(None).await;
    let Ok(pools) = ipam.pools().await else {
        return;
    };
    for pool in pools.iter().take(2) {
        // Bounded, so a huge pool is a slow input, not a finding here.
        if pool.cidr.prefix_len() < 16 || pool.block_prefix > pool.cidr.prefix_len() + 12 {
            continue;
        }
        if let Ok(ip) = ipam.allocate(pool, None, Handle::for_host("h0")).await {
            let _ = ipam.holder(ip).await;
            let _ = ipam.release(ip).await;
        }
        let _ = ipam
            .allocate(pool, Some(pool.cidr.network()), Handle::for_host("h0"))
            .await;
        let _ = ipam.remove_pool(&pool.cidr).await;
    }
    let _ = ipam.release_host("h1").await;
}

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Pool>(data);
    let _ = serde_json::from_slice::<Block>(data);
    let _ = serde_json::from_slice::<Endpoint>(data);
    let _ = serde_json::from_slice::<Node>(data);
    let _ = serde_json::from_slice::<NetworkDef>(data);
    let _ = serde_json::from_slice::<Profile>(data);
    let _ = serde_json::from_slice::<Exposure>(data);
    let _ = serde_json::from_slice::<MysqlCluster>(data);
    runtime().block_on(exercise(data));
});
