use std::sync::Arc;

use super::*;
use crate::store::Store;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[tokio::test]
async fn bad_pools_are_refused_and_nothing_is_written() {
    let store = Store::in_memory().with_etcd_addresses(vec!["198.18.0.2".parse().unwrap()]);
    let node = crate::model::Node {
        hostname: "h1".into(),
        ip: "198.18.1.11".parse().unwrap(),
        started: Utc::now(),
        version: "t".into(),
        subnet: None,
        vxlan_mac: None,
        ip6: None,
    };
    store.register_node(&node, 10).await.unwrap();
    let ipam = Ipam::new(store.clone(), "cli");
    let before = store.revision().await.unwrap();
    for (cidr, block, why) in [
        ("0.0.0.0/0", 26, "too large"),
        ("10.0.0.0/7", 26, "too large"),
        ("127.0.0.0/8", 24, "loopback"),
        ("169.254.0.0/16", 26, "link-local"),
        ("224.0.0.0/4", 26, "too large"),
        ("239.1.0.0/16", 26, "multicast"),
        ("240.0.0.0/8", 24, "reserved"),
        ("255.255.255.255/32", 32, "broadcast"),
        ("0.0.0.0/8", 24, "this network"),
        ("10.0.0.0/8", 26, "262144 blocks"),
        ("198.18.0.0/24", 26, "etcd endpoint"),
        ("198.18.1.0/24", 26, "node h1"),
        ("198.18.64.1/20", 26, "did you mean 198.18.64.0/20"),
        ("198.18.64.0/20", 8, "block size"),
    ] {
        let err = ipam
            .add_pool(net(cidr), block)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{cidr}: {err}");
    }
    assert_eq!(store.revision().await.unwrap(), before);
    ipam.add_pool(net("10.0.0.0/8"), 24).await.unwrap();
}

#[tokio::test]
async fn concurrent_overlapping_adds_never_both_succeed() {
    for _ in 0..20 {
        let store = Store::in_memory();
        let cidrs = ["198.18.64.0/20", "198.18.66.0/24", "198.18.64.0/18"];
        let ipam = Arc::new(Ipam::new(store.clone(), "cli"));
        let tasks: Vec<_> = cidrs
            .iter()
            .map(|c| {
                let (ipam, c) = (ipam.clone(), net(c));
                tokio::spawn(async move { ipam.add_pool(c, 26).await })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(Error::Overlap { .. }) => {}
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert_eq!(won, 1);
        assert_eq!(store.pools().await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn an_add_that_read_a_stale_index_writes_nothing() {
    let store = Store::in_memory();
    let index = store.pool_index().await.unwrap();
    let ipam = Ipam::new(store.clone(), "cli");
    ipam.add_pool(net("198.18.64.0/20"), 26).await.unwrap();
    // A racing add that listed pools before the first one was written.
    let late = validate_pool(net("198.18.64.0/18"), 26).unwrap();
    assert!(!store.create_pool(&late, index).await.unwrap());
    assert_eq!(store.pools().await.unwrap().len(), 1);
}
