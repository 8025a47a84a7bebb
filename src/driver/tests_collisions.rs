//! Collisions: two policy passes at once (the one that read etcd first
//! must not program the firewall last), and two endpoints that would
//! share one interface.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Notify;

use std::collections::HashMap;

use super::{NET, host, host_with};
use crate::dataplane::host_veth_name;
use crate::model::{Node, VxlanMode};
use crate::policy::names::vxlan_peers_set;
use crate::store::kv::{Expect, KeyStream, Kv, LeaseGuard, Swap, Versioned};
use crate::store::memory::MemoryKv;
use crate::store::{Error, Store};

/// An in-memory store whose next listing of the armed prefix's last part
/// (`/endpoints/`, `/nodes/`) waits until released: a pass caught between
/// reading etcd and programming.
#[derive(Default)]
struct GatedKv {
    kv: MemoryKv,
    armed: std::sync::Mutex<Option<&'static str>>,
    entered: Notify,
    release: Notify,
}

impl GatedKv {
    fn arm(&self, suffix: &'static str) {
        *self.armed.lock().unwrap() = Some(suffix);
    }
}

#[async_trait]
impl Kv for GatedKv {
    async fn get(&self, key: &str) -> Result<Option<Versioned<Vec<u8>>>, Error> {
        self.kv.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned<Vec<u8>>)>, Error> {
        let listed = self.kv.list(prefix).await;
        // Checked and disarmed under one lock: only one listing is held.
        let armed = self.armed.lock().unwrap().take_if(|s| prefix.ends_with(*s));
        if armed.is_some() {
            self.entered.notify_one();
            self.release.notified().await;
        }
        listed
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), Error> {
        self.kv.put(key, value).await
    }
    async fn swap(&self, key: &str, expect: Expect, value: Option<Vec<u8>>) -> Result<bool, Error> {
        self.kv.swap(key, expect, value).await
    }
    async fn swap_all(&self, swaps: Vec<Swap>) -> Result<bool, Error> {
        self.kv.swap_all(swaps).await
    }
    async fn delete(&self, key: &str) -> Result<bool, Error> {
        self.kv.delete(key).await
    }
    async fn put_leased(&self, key: &str, value: Vec<u8>, ttl: i64) -> Result<LeaseGuard, Error> {
        self.kv.put_leased(key, value, ttl).await
    }
    async fn create_leased(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: i64,
    ) -> Result<Option<LeaseGuard>, Error> {
        self.kv.create_leased(key, value, ttl).await
    }
    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<KeyStream, Error> {
        self.kv.watch(prefix, from_revision).await
    }
    async fn revision(&self, within: &str) -> Result<i64, Error> {
        self.kv.revision(within).await
    }
}

/// The first ping between two fresh containers was once lost (CI at
/// ec35dd5): a pass that read the endpoints before the second container's
/// Join programmed its stale view after the Join's own pass, removing the
/// new endpoint's chains until the next pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_that_read_before_a_join_never_programs_after_it() {
    let kv = Arc::new(GatedKv::default());
    let h = Arc::new(host_with(Store::new(kv.clone(), "/tabby")));
    let pool = h.network().await;
    let (first, _) = h.endpoint(&pool, 1).await;
    h.driver.join(NET, &first, "/x").await.unwrap();

    // A pass (a resync, or one a watch event started) reads the endpoints
    // and is held there.
    kv.arm("/endpoints/");
    let stale = tokio::spawn({
        let h = h.clone();
        async move { h.driver.converge_policy().await }
    });
    kv.entered.notified().await;
    // Meanwhile a second container joins.
    let (second, _) = h.endpoint(&pool, 2).await;
    let join = tokio::spawn({
        let h = h.clone();
        let second = second.clone();
        async move { h.driver.join(NET, &second, "/y").await.map(|_| ()) }
    });
    // Let the Join get as far as it can before the held pass goes on.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    kv.release.notify_one();
    stale.await.unwrap().unwrap();
    join.await.unwrap().unwrap();

    let veth = host_veth_name(&second);
    let last = h.firewall.last();
    assert!(
        last.ruleset.dispatch.to.contains_key(&veth),
        "the last state programmed lacks the joined endpoint {veth}"
    );
}

fn node(hostname: &str, ip: &str) -> Node {
    Node {
        hostname: hostname.into(),
        ip: ip.parse().unwrap(),
        started: chrono::Utc::now(),
        version: "test".into(),
        subnet: None,
        vxlan_mac: None,
        ip6: None,
    }
}

/// Resyncs start from the watch, the periodic timer and the ipam check:
/// the one that read the nodes before a host joined must not program its
/// VXLAN guard set (who may send tunnel packets) after a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_that_read_first_never_programs_after_a_later_one() {
    let kv = Arc::new(GatedKv::default());
    let h = Arc::new(host_with(Store::new(kv.clone(), "/tabby")));
    h.network().await;
    let cidr = "198.18.64.0/24".parse().unwrap();
    let current = h.driver.store.pool(&cidr).await.unwrap().unwrap();
    let mut pool = current.value;
    pool.vxlan = VxlanMode::CrossSubnet;
    let updated = h.driver.store.update_pool(&pool, current.revision).await;
    assert!(updated.unwrap());
    let ttl = 60;
    let h1 = node("h1", "198.18.0.11");
    let _h1 = h.driver.store.register_node(&h1, ttl).await.unwrap();

    kv.arm("/nodes/");
    let stale = tokio::spawn({
        let h = h.clone();
        async move { h.driver.resync().await.map(|_| ()) }
    });
    kv.entered.notified().await;
    let h2 = node("h2", "198.18.1.12");
    let _h2 = h.driver.store.register_node(&h2, ttl).await.unwrap();
    let fresh = tokio::spawn({
        let h = h.clone();
        async move { h.driver.resync().await.map(|_| ()) }
    });
    // Let the later resync get as far as it can before the first goes on.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    kv.release.notify_one();
    stale.await.unwrap().unwrap();
    fresh.await.unwrap().unwrap();

    let last = h.firewall.last();
    let guard = &last.sets[&vxlan_peers_set()];
    assert!(
        guard.contains(&std::net::IpAddr::V4(h2.ip)),
        "h2 missing from {guard:?}"
    );
}

#[tokio::test]
async fn an_endpoint_whose_veth_name_is_taken_is_refused_and_not_recorded() {
    let h = host();
    let pool = h.network().await;
    let (first, _) = h.endpoint(&pool, 3).await;
    // Same first characters, so the same interface name; another ending.
    let second = format!("{}{}", &first[..20], "f".repeat(44));
    let no_options = HashMap::new();
    let address = h.driver.request_address(&pool, "", &no_options);
    let address = address.await.unwrap();

    let err = h.driver.create_endpoint(NET, &second, &address, "").await;
    let err = err.unwrap_err().to_string();
    assert!(err.contains(&host_veth_name(&first)), "{err}");
    assert!(err.contains(&first), "{err}");
    assert!(!h.recorded(&second).await);
    assert!(h.recorded(&first).await);
    // Docker retrying the first endpoint's call is still answered.
    let again = h
        .driver
        .store
        .endpoint("h1", &first)
        .await
        .unwrap()
        .unwrap();
    let again = format!("{}/32", again.ip);
    h.driver
        .create_endpoint(NET, &first, &again, "")
        .await
        .unwrap();
}
