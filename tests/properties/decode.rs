//! Records as read back from etcd: whatever bytes sit under any key, every
//! typed read of the store and every IPAM operation over it returns a
//! value or an error, never a panic.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use tabby::ipam::Ipam;
use tabby::model::{Block, Endpoint, Exposure, MysqlCluster, NetworkDef, Node, Pool, Profile};
use tabby::store::memory::MemoryKv;
use tabby::store::{Kv, Store};

/// Every prefix tabby lists records under, from the store's own layout.
fn prefixes() -> &'static [String] {
    static PREFIXES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    PREFIXES.get_or_init(|| tabby::store::Keys::new("/tabby").record_prefixes())
}

fn cidr() -> impl Strategy<Value = String> {
    (any::<[u8; 4]>(), prop_oneof![8 => 16u8..=32, 1 => 0u8..=40])
        .prop_map(|(a, p)| format!("{}.{}.{}.{}/{p}", a[0], a[1], a[2], a[3]))
}

/// Pools and blocks that decode but need not make sense: prefixes out
/// of order, allocations outside their block, keys that disagree.
fn pool_or_block() -> impl Strategy<Value = Value> {
    let handle = ("[a-z0-9]{0,4}", prop::option::of("[0-9a-f]{0,12}")).prop_map(
        |(host, ep)| json!({"host": host, "endpoint": ep, "time": "2026-01-01T00:00:00Z"}),
    );
    prop_oneof![
        (cidr(), any::<u8>()).prop_map(|(c, p)| json!({"cidr": c, "block_prefix": p, "created": "2026-01-01T00:00:00Z"})),
        (cidr(), cidr(), prop::option::of("h[0-3]"), prop::collection::btree_map(prop_oneof![0u32..70, any::<u32>()], handle, 0..6))
            .prop_map(|(c, p, a, allocs)| json!({"cidr": c, "pool": p, "affinity": a, "allocations": allocs})),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => any::<Vec<u8>>(),
        2 => crate::parse::json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        3 => pool_or_block().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
}

fn record() -> impl Strategy<Value = (usize, String, Vec<u8>)> {
    (
        0..prefixes().len(),
        prop_oneof![
            "[a-z0-9./-]{0,20}",
            "\\PC{0,8}",
            cidr().prop_map(|c| c.replace('/', "-"))
        ],
        value(),
    )
}

/// Each is a value or an error; which one does not matter here.
async fn read_everything(store: &Store) {
    let _ = store.pools().await;
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
}

/// Allocation and release over whatever pools and blocks decoded.
async fn use_ipam(store: &Store) {
    let ipam = Ipam::new(store.clone(), "h0");
    let Ok(pools) = ipam.pools().await else {
        return;
    };
    let _ = ipam.default_pool(None, false).await;
    for pool in pools.iter().take(3) {
        let got = ipam
            .allocate(pool, None, tabby::model::Handle::for_host("h0"))
            .await;
        let _ = ipam
            .allocate(
                pool,
                Some(pool.cidr.network()),
                tabby::model::Handle::for_host("h0"),
            )
            .await;
        if let Ok(ip) = got {
            let _ = ipam.holder(ip).await;
            let _ = ipam.release(ip).await;
        }
        let _ = ipam.remove_pool(&pool.cidr).await;
    }
    let _ = ipam.release_host("h1").await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn model_types_decode_arbitrary_bytes_to_errors(bytes in any::<Vec<u8>>()) {
        let _ = serde_json::from_slice::<Pool>(&bytes);
        let _ = serde_json::from_slice::<Block>(&bytes);
        let _ = serde_json::from_slice::<Endpoint>(&bytes);
        let _ = serde_json::from_slice::<Node>(&bytes);
        let _ = serde_json::from_slice::<NetworkDef>(&bytes);
        let _ = serde_json::from_slice::<Profile>(&bytes);
        let _ = serde_json::from_slice::<Exposure>(&bytes);
        let _ = serde_json::from_slice::<MysqlCluster>(&bytes);
    }

    #[test]
    fn arbitrary_records_in_the_store_never_panic_a_reader(records in prop::collection::vec(record(), 1..8)) {
        crate::run(async {
            let kv = Arc::new(MemoryKv::new());
            for (kind, name, bytes) in records {
                kv.put(&format!("{}{name}", prefixes()[kind]), bytes).await.unwrap();
            }
            let store = Store::new(kv, "/tabby");
            read_everything(&store).await;
            use_ipam(&store).await;
        });
    }
}
