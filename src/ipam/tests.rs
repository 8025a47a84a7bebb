use std::collections::HashSet;

use super::*;
use crate::store::Store;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

async fn setup(cidr: &str, block: u8) -> (Store, Pool) {
    let store = Store::in_memory();
    let pool = Ipam::new(store.clone(), "h1")
        .add_pool(net(cidr), block)
        .await
        .unwrap();
    (store, pool)
}

#[tokio::test]
async fn first_allocation_claims_a_block_and_the_next_reuses_it() {
    let (store, pool) = setup("198.18.64.0/20", 26).await;
    let ipam = Ipam::new(store.clone(), "h1");
    let a = ipam
        .allocate(&pool, None, Handle::for_host("h1"))
        .await
        .unwrap();
    let b = ipam
        .allocate(&pool, None, Handle::for_host("h1"))
        .await
        .unwrap();
    let blocks = store.blocks().await.unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].value.affinity.as_deref(), Some("h1"));
    assert!(blocks[0].value.cidr.contains(&a) && blocks[0].value.cidr.contains(&b));
    assert_ne!(a, b);
}

#[tokio::test]
async fn requested_address_is_honoured_and_a_taken_one_names_its_holder() {
    let (store, pool) = setup("198.18.64.0/20", 26).await;
    let h1 = Ipam::new(store.clone(), "h1");
    let h2 = Ipam::new(store.clone(), "h2");
    let ip = "198.18.70.5".parse().unwrap();
    let mut handle = Handle::for_host("h1");
    handle.container = Some("web".into());
    assert_eq!(h1.allocate(&pool, Some(ip), handle).await.unwrap(), ip);
    let err = h2
        .allocate(&pool, Some(ip), Handle::for_host("h2"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("198.18.70.5") && msg.contains("container web") && msg.contains("h1"),
        "{msg}"
    );
    let outside = h2
        .allocate(
            &pool,
            Some("198.18.0.1".parse().unwrap()),
            Handle::for_host("h2"),
        )
        .await;
    assert!(matches!(outside, Err(Error::NotInPool { .. })));
}

#[tokio::test]
async fn a_small_pool_exhausts_with_a_clear_error_and_release_frees() {
    let (store, pool) = setup("198.18.80.0/28", 26).await;
    assert_eq!(pool.block_prefix, 28, "block clamps to the pool");
    let ipam = Ipam::new(store, "h1");
    let mut got = HashSet::new();
    for _ in 0..16 {
        got.insert(
            ipam.allocate(&pool, None, Handle::for_host("h1"))
                .await
                .unwrap(),
        );
    }
    assert_eq!(got.len(), 16);
    let err = ipam
        .allocate(&pool, None, Handle::for_host("h1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exhausted"), "{err}");
    let one = *got.iter().next().unwrap();
    assert!(ipam.release(one).await.unwrap().is_some());
    assert!(
        ipam.release(one).await.unwrap().is_none(),
        "release is idempotent"
    );
    assert_eq!(
        ipam.allocate(&pool, None, Handle::for_host("h1"))
            .await
            .unwrap(),
        one
    );
}

#[tokio::test]
async fn a_host_borrows_when_every_block_is_claimed_by_others() {
    let (store, pool) = setup("198.18.80.0/27", 28).await;
    let h1 = Ipam::new(store.clone(), "h1");
    let h2 = Ipam::new(store.clone(), "h2");
    // h1 claims both blocks (one address each).
    h1.allocate(
        &pool,
        Some("198.18.80.0".parse().unwrap()),
        Handle::for_host("h1"),
    )
    .await
    .unwrap();
    h1.allocate(
        &pool,
        Some("198.18.80.16".parse().unwrap()),
        Handle::for_host("h1"),
    )
    .await
    .unwrap();
    let borrowed = h2
        .allocate(&pool, None, Handle::for_host("h2"))
        .await
        .unwrap();
    let holder = h2.holder(borrowed).await.unwrap().unwrap();
    assert_eq!(holder.host, "h2");
    let blocks = store.blocks().await.unwrap();
    assert!(
        blocks
            .iter()
            .all(|b| b.value.affinity.as_deref() == Some("h1"))
    );
}

#[tokio::test]
async fn concurrent_hosts_never_share_an_address() {
    let (store, pool) = setup("198.18.64.0/22", 26).await;
    let mut tasks = Vec::new();
    for host in ["h1", "h2", "h3", "h4"] {
        let ipam = Ipam::new(store.clone(), host);
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut ips = Vec::new();
            for _ in 0..100 {
                ips.push(
                    ipam.allocate(&pool, None, Handle::for_host(host))
                        .await
                        .unwrap(),
                );
            }
            ips
        }));
    }
    let mut all = HashSet::new();
    for task in tasks {
        for ip in task.await.unwrap() {
            assert!(all.insert(ip), "{ip} allocated twice");
        }
    }
    assert_eq!(all.len(), 400);
}

#[tokio::test]
async fn overlapping_pools_are_refused_and_pools_in_use_are_kept() {
    let (store, pool) = setup("198.18.64.0/20", 26).await;
    let ipam = Ipam::new(store.clone(), "h1");
    let err = ipam.add_pool(net("198.18.66.0/24"), 26).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("overlaps existing pool 198.18.64.0/20"),
        "{err}"
    );
    assert!(matches!(
        ipam.add_pool(net("198.18.64.1/20"), 26).await,
        Err(Error::Invalid(..))
    ));
    let ip = ipam
        .allocate(&pool, None, Handle::for_host("h1"))
        .await
        .unwrap();
    assert!(matches!(
        ipam.remove_pool(&pool.cidr).await,
        Err(Error::PoolInUse { count: 1, .. })
    ));
    ipam.release(ip).await.unwrap();
    ipam.remove_pool(&pool.cidr).await.unwrap();
    assert!(store.blocks().await.unwrap().is_empty());
    assert!(matches!(
        ipam.default_pool(None, false).await,
        Err(Error::NoPools)
    ));
}

#[tokio::test]
async fn releasing_a_host_frees_its_addresses_and_blocks_but_not_others() {
    let (store, pool) = setup("198.18.80.0/27", 28).await;
    let h1 = Ipam::new(store.clone(), "h1");
    let h2 = Ipam::new(store.clone(), "h2");
    h1.allocate(
        &pool,
        Some("198.18.80.1".parse().unwrap()),
        Handle::for_host("h1"),
    )
    .await
    .unwrap();
    let kept = h2
        .allocate(
            &pool,
            Some("198.18.80.2".parse().unwrap()),
            Handle::for_host("h2"),
        )
        .await
        .unwrap();
    h1.allocate(
        &pool,
        Some("198.18.80.17".parse().unwrap()),
        Handle::for_host("h1"),
    )
    .await
    .unwrap();
    assert_eq!(h2.release_host("h1").await.unwrap(), (2, 2));
    let blocks = store.blocks().await.unwrap();
    assert_eq!(blocks.len(), 1, "the emptied block is gone");
    assert_eq!(blocks[0].value.affinity, None);
    assert_eq!(h2.holder(kept).await.unwrap().unwrap().host, "h2");
    assert_eq!(h2.release_host("h1").await.unwrap(), (0, 0), "idempotent");
}
