//! Writes whose outcome is unknown (a timeout on one etcd member, then a
//! retry on another) are resolved by reading back, and ReleaseAddress frees
//! only this host's addresses. The in-memory Kv injects the faults.

use std::sync::Arc;

use super::*;
use crate::store::Store;
use crate::store::memory::{Fault, MemoryKv};

async fn setup() -> (Arc<MemoryKv>, Store, Pool) {
    let kv = Arc::new(MemoryKv::new());
    let store = Store::new(kv.clone(), "/tabby");
    let pool = Ipam::new(store.clone(), "h1")
        .add_pool("198.18.64.0/20".parse().unwrap(), 26)
        .await
        .unwrap();
    (kv, store, pool)
}

async fn held(store: &Store) -> Vec<(IpAddr, Handle)> {
    let mut all = Vec::new();
    for block in store.blocks().await.unwrap() {
        all.extend(block.value.allocated().map(|(ip, h)| (ip, h.clone())));
    }
    all
}

#[tokio::test]
async fn an_allocation_applied_but_reported_failed_is_recognised_not_leaked() {
    for fault in [Fault::AppliedThenMismatch, Fault::AppliedThenError] {
        let (kv, store, pool) = setup().await;
        let ipam = Ipam::new(store.clone(), "h1");
        // The block claim, then a take from the claimed block.
        for _ in 0..2 {
            kv.inject(&[fault]);
            let handle = Handle::for_host("h1");
            let ip = ipam.allocate(&pool, None, handle.clone()).await.unwrap();
            let mine: Vec<_> = held(&store)
                .await
                .into_iter()
                .filter(|(_, h)| *h == handle)
                .collect();
            assert_eq!(mine, [(ip, handle)], "{fault:?}");
        }
        assert_eq!(held(&store).await.len(), 2, "{fault:?}: no address leaked");
    }
}

#[tokio::test]
async fn a_requested_address_applied_but_reported_failed_is_not_in_use_by_us() {
    for fault in [Fault::AppliedThenMismatch, Fault::AppliedThenError] {
        let (kv, store, pool) = setup().await;
        let ipam = Ipam::new(store.clone(), "h1");
        let ip: IpAddr = "198.18.70.5".parse().unwrap();
        kv.inject(&[fault]);
        let got = ipam.allocate(&pool, Some(ip), Handle::for_host("h1")).await;
        assert_eq!(got.unwrap(), ip, "{fault:?}");
        // A different call still finds it taken.
        let again = ipam.allocate(&pool, Some(ip), Handle::for_host("h1")).await;
        assert!(matches!(again, Err(Error::InUse { .. })), "{again:?}");
    }
}

#[tokio::test]
async fn a_release_applied_but_reported_failed_counts_as_released() {
    for fault in [Fault::AppliedThenMismatch, Fault::AppliedThenError] {
        let (kv, store, pool) = setup().await;
        let ipam = Ipam::new(store.clone(), "h1");
        let handle = Handle::for_host("h1");
        let ip = ipam.allocate(&pool, None, handle.clone()).await.unwrap();
        kv.inject(&[fault]);
        assert!(
            ipam.release_if_held_by(ip, &handle).await.unwrap(),
            "{fault:?}"
        );
        assert!(held(&store).await.is_empty());
        kv.inject(&[fault]);
        let ip = ipam.allocate(&pool, None, handle.clone()).await.unwrap();
        kv.inject(&[fault]);
        assert_eq!(
            ipam.release_own(ip).await.unwrap(),
            Released::Released(handle.clone()),
            "{fault:?}"
        );
        assert_eq!(ipam.release_own(ip).await.unwrap(), Released::Free);
    }
}

#[tokio::test]
async fn release_own_leaves_another_hosts_address_alone() {
    let (_kv, store, pool) = setup().await;
    let h2 = Ipam::new(store.clone(), "h2");
    let theirs = Handle::for_host("h2");
    let ip = h2.allocate(&pool, None, theirs.clone()).await.unwrap();
    let revision = store.revision().await.unwrap();
    let h1 = Ipam::new(store.clone(), "h1");
    assert_eq!(
        h1.release_own(ip).await.unwrap(),
        Released::Foreign(theirs.clone())
    );
    assert_eq!(store.revision().await.unwrap(), revision);
    assert_eq!(h1.holder(ip).await.unwrap(), Some(theirs));
}
