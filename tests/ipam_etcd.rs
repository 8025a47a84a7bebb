//! IPAM against a real etcd: hosts allocating concurrently never share an
//! address, blocks are claimed and borrowed, small pools exhaust clearly,
//! in both families.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use tabby::ipam::{Error, Ipam};
use tabby::model::Handle;
use tabby::store::Store;

async fn store(etcd: &support::Etcd, prefix: &str) -> Store {
    Store::connect(
        &tabby::store::EtcdOptions::plain(std::slice::from_ref(&etcd.endpoint)),
        prefix,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_hosts_draw_1000_addresses_without_a_duplicate() {
    let etcd = support::Etcd::start();
    draw_1000(&etcd, "/t1", "198.18.64.0/20", 26).await;
}

/// A /56 has 2^66 blocks of /122: free blocks are found without listing
/// them, and the same guarantees hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_hosts_draw_1000_ipv6_addresses_without_a_duplicate() {
    let etcd = support::Etcd::start();
    draw_1000(&etcd, "/t1v6", "2001:2:0:1000::/56", 122).await;
}

async fn draw_1000(etcd: &support::Etcd, prefix: &str, cidr: &str, block: u8) {
    let admin = Ipam::new(store(etcd, prefix).await, "admin");
    let pool = admin.add_pool(cidr.parse().unwrap(), block).await.unwrap();

    let mut tasks = Vec::new();
    for host in ["h1", "h2", "h3", "h4"] {
        // Each "host" has its own etcd connection, as separate agents do.
        let ipam = Ipam::new(store(etcd, prefix).await, host);
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..250 {
                got.push(
                    ipam.allocate(&pool, None, Handle::for_host(host))
                        .await
                        .unwrap(),
                );
            }
            got
        }));
    }
    let mut all = HashSet::new();
    let mut per_host: HashMap<usize, Vec<IpAddr>> = HashMap::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let got = task.await.unwrap();
        for ip in &got {
            assert!(all.insert(*ip), "{ip} allocated twice");
        }
        per_host.insert(i, got);
    }
    assert_eq!(all.len(), 1000);

    // Every allocation is recorded once, under its holder's name, and each
    // host filled blocks it claimed itself.
    let store = store(etcd, prefix).await;
    let blocks = store.blocks().await.unwrap();
    let recorded: usize = blocks.iter().map(|b| b.value.allocations.len()).sum();
    assert_eq!(recorded, 1000);
    for b in &blocks {
        assert!(pool.cidr.contains(&b.value.cidr), "{}", b.value.cidr);
        assert_eq!(b.value.cidr.prefix_len(), block);
        for (ip, handle) in b.value.allocated() {
            assert!(all.contains(&ip));
            assert_eq!(
                b.value.affinity.as_deref(),
                Some(handle.host.as_str()),
                "no borrowing was needed"
            );
        }
    }
    let hosts: HashSet<_> = blocks
        .iter()
        .filter_map(|b| b.value.affinity.clone())
        .collect();
    assert_eq!(hosts.len(), 4);
}

#[tokio::test]
async fn blocks_are_claimed_then_borrowed_and_small_pools_exhaust() {
    let etcd = support::Etcd::start();
    let store = store(&etcd, "/t2").await;
    let h1 = Ipam::new(store.clone(), "h1");
    let h2 = Ipam::new(store.clone(), "h2");
    // A /28 pool in /29 blocks: h1 claims both, h2 must borrow.
    let pool = h1
        .add_pool("198.18.80.0/28".parse().unwrap(), 29)
        .await
        .unwrap();
    h1.allocate(
        &pool,
        Some("198.18.80.1".parse().unwrap()),
        Handle::for_host("h1"),
    )
    .await
    .unwrap();
    h1.allocate(
        &pool,
        Some("198.18.80.9".parse().unwrap()),
        Handle::for_host("h1"),
    )
    .await
    .unwrap();
    let borrowed = h2
        .allocate(&pool, None, Handle::for_host("h2"))
        .await
        .unwrap();
    let blocks = store.blocks().await.unwrap();
    assert_eq!(blocks.len(), 2);
    assert!(
        blocks
            .iter()
            .all(|b| b.value.affinity.as_deref() == Some("h1"))
    );
    assert_eq!(h1.holder(borrowed).await.unwrap().unwrap().host, "h2");

    let mut taken = vec![borrowed];
    loop {
        match h2.allocate(&pool, None, Handle::for_host("h2")).await {
            Ok(ip) => taken.push(ip),
            Err(Error::Exhausted { pool: p, size }) => {
                assert_eq!((p, size), (pool.cidr, 16));
                break;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(taken.len(), 14, "16 addresses, 2 held by h1");
    let msg = h2
        .allocate(&pool, None, Handle::for_host("h2"))
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("pool 198.18.80.0/28 is exhausted"), "{msg}");

    // Release, then the same address comes back; a second release is a no-op.
    let freed = taken[3];
    assert!(h2.release(freed).await.unwrap().is_some());
    assert!(h2.release(freed).await.unwrap().is_none());
    assert_eq!(
        h1.allocate(&pool, None, Handle::for_host("h1"))
            .await
            .unwrap(),
        freed
    );
}

#[tokio::test]
async fn each_bad_pool_is_refused_and_etcd_is_unchanged() {
    let etcd = support::Etcd::start();
    let store = store(&etcd, "/t3").await;
    let ipam = Ipam::new(store.clone(), "cli");
    ipam.add_pool("198.18.64.0/20".parse().unwrap(), 26)
        .await
        .unwrap();
    ipam.add_pool("2001:2:0:1000::/56".parse().unwrap(), 122)
        .await
        .unwrap();
    let before = store.revision().await.unwrap();
    for (cidr, block) in [
        ("0.0.0.0/0", 26),
        ("10.0.0.0/7", 26),
        ("127.0.0.0/8", 24),
        ("169.254.0.0/16", 26),
        ("224.0.0.0/8", 24),
        ("240.0.0.0/8", 24),
        ("255.255.255.255/32", 32),
        ("10.0.0.0/8", 26),
        ("198.18.66.0/24", 26),
        ("::/0", 122),
        ("2001:2::/31", 122),
        ("fe80::/64", 122),
        ("ff05::/64", 122),
        ("2001:2:0:1000::1/64", 122),
        ("2001:2:0:1080::/64", 122),
        ("2001:2:0:1000::/52", 122),
        ("2001:2:0:2000::/64", 111),
    ] {
        let err = ipam.add_pool(cidr.parse().unwrap(), block).await;
        assert!(err.is_err(), "{cidr} accepted");
    }
    let vxlan6 = ipam
        .add_pool_with(
            "2001:2:0:3000::/64".parse().unwrap(),
            122,
            tabby::model::VxlanMode::Always,
        )
        .await
        .unwrap_err();
    assert!(vxlan6.to_string().contains("IPv4 pools only"), "{vxlan6}");
    assert_eq!(store.revision().await.unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_overlapping_pool_adds_never_both_succeed() {
    let etcd = support::Etcd::start();
    for round in 0..10 {
        let prefix = format!("/t4-{round}");
        let mut tasks = Vec::new();
        for cidr in ["198.18.64.0/20", "198.18.66.0/24", "198.18.64.0/18"] {
            // Separate connections, as separate CLI runs have.
            let ipam = Ipam::new(store(&etcd, &prefix).await, "cli");
            tasks.push(tokio::spawn(async move {
                ipam.add_pool(cidr.parse().unwrap(), 26).await
            }));
        }
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => won += 1,
                Err(Error::Overlap { .. }) => {}
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
        assert_eq!(store(&etcd, &prefix).await.pools().await.unwrap().len(), 1);
    }
}
