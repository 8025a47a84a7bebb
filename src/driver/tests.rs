//! The driver's decisions against fakes of every side effect: an
//! in-memory datastore, host (links, routes, sysctls), firewall and
//! Docker. No root, no kernel: what Join, Leave, resync, drift repair and
//! `ipam check` do is read off what the fakes were asked.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{Driver, DriverConfig, Error};
use crate::dataplane::fake::{FakeKernel, FakeSysctl};
use crate::dataplane::{Dataplane, Route, RouteTarget, host_veth_name, owner_alias};
use crate::docker::Engine;
use crate::policy::{Firewall, PolicyState, Table};
use crate::store::Store;

/// Keeps every state it is given; `repair_drift` answers what it is told.
#[derive(Default)]
struct RecordingFirewall {
    applied: Mutex<Vec<Arc<PolicyState>>>,
    drift: Mutex<Vec<String>>,
}

impl RecordingFirewall {
    fn last(&self) -> Arc<PolicyState> {
        self.applied
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("applied")
    }
}

#[async_trait]
impl Firewall for RecordingFirewall {
    async fn apply(&self, state: Arc<PolicyState>) -> Result<(), crate::policy::Error> {
        self.applied.lock().unwrap().push(state);
        Ok(())
    }

    async fn repair_drift(&self) -> Result<Vec<String>, crate::policy::Error> {
        Ok(std::mem::take(&mut *self.drift.lock().unwrap()))
    }

    async fn apply_piece(&self, _: &Table) -> Result<(), crate::policy::Error> {
        Ok(())
    }
}

/// Docker as the check sees it: which endpoints each network has.
#[derive(Default)]
struct FakeDocker {
    live: Mutex<HashMap<String, HashMap<String, Vec<IpAddr>>>>,
}

#[async_trait]
impl Engine for FakeDocker {
    async fn container_for_endpoint(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<String>, crate::docker::Error> {
        Ok(None)
    }

    async fn container_labels(
        &self,
        _: &str,
    ) -> Result<BTreeMap<String, String>, crate::docker::Error> {
        Ok(BTreeMap::new())
    }

    async fn network_name(&self, _: &str) -> Result<Option<String>, crate::docker::Error> {
        Ok(None)
    }

    async fn network_endpoints(
        &self,
        network_id: &str,
    ) -> Result<Option<HashMap<String, Vec<IpAddr>>>, crate::docker::Error> {
        Ok(self.live.lock().unwrap().get(network_id).cloned())
    }
}

struct Host {
    driver: Driver,
    kernel: Arc<FakeKernel>,
    sysctl: Arc<FakeSysctl>,
    firewall: Arc<RecordingFirewall>,
    docker: Arc<FakeDocker>,
}

const NET: &str = "0a0b0c0d0e0f0a0b0c0d0e0f0a0b0c0d0e0f0a0b0c0d0e0f0a0b0c0d0e0f0a0b";

fn id(n: u8) -> String {
    format!("{n:02x}{}", "e".repeat(62))
}

fn host() -> Host {
    host_with(Store::in_memory())
}

fn host_with(store: Store) -> Host {
    let kernel = Arc::new(FakeKernel::default());
    let sysctl = Arc::new(FakeSysctl::default());
    let firewall = Arc::new(RecordingFirewall::default());
    let docker = Arc::new(FakeDocker::default());
    let driver = Driver::new(
        store,
        Dataplane::with(kernel.clone(), sysctl.clone(), 1500),
        firewall.clone(),
        DriverConfig {
            host: "h1".into(),
            default_pool: None,
            block_prefix: 26,
        },
        Some(docker.clone() as Arc<dyn Engine>),
    );
    Host {
        driver,
        kernel,
        sysctl,
        firewall,
        docker,
    }
}

impl Host {
    /// What dockerd does for `docker network create -d tabby`.
    async fn network(&self) -> String {
        let grant = self
            .driver
            .request_pool("198.18.64.0/24", "", false)
            .await
            .unwrap();
        let gateway_request = HashMap::from([(
            "RequestAddressType".to_string(),
            "com.docker.network.gateway".to_string(),
        )]);
        let gateway = self
            .driver
            .request_address(&grant.pool_id, "", &gateway_request)
            .await
            .unwrap();
        self.driver
            .create_network(NET, &grant.pool, &gateway, None, BTreeMap::new())
            .await
            .unwrap();
        grant.pool_id
    }

    /// What dockerd does for `docker run --net`, up to Join.
    async fn endpoint(&self, pool_id: &str, n: u8) -> (String, Ipv4Addr) {
        let address = self
            .driver
            .request_address(pool_id, "", &HashMap::new())
            .await
            .unwrap();
        self.driver
            .create_endpoint(NET, &id(n), &address, "")
            .await
            .unwrap();
        let ip = address.split('/').next().unwrap().parse().unwrap();
        (id(n), ip)
    }

    /// Whether this host's datastore still records the endpoint.
    async fn recorded(&self, endpoint: &str) -> bool {
        let found = self.driver.store.endpoint("h1", endpoint).await.unwrap();
        found.is_some()
    }

    /// `tabby ipam check` with no grace period.
    async fn check(&self, repair: bool) -> super::CheckReport {
        let grace = chrono::Duration::zero();
        self.driver.check(grace, repair).await.unwrap()
    }

    fn live(&self, endpoints: &[(String, Ipv4Addr)]) {
        let map = endpoints
            .iter()
            .map(|(id, ip)| (id.clone(), vec![IpAddr::V4(*ip)]))
            .collect();
        self.docker.live.lock().unwrap().insert(NET.into(), map);
    }
}

fn route_to(ip: Ipv4Addr, veth: &str) -> Route {
    Route {
        dst: IpAddr::V4(ip).into(),
        target: RouteTarget::Dev(veth.into()),
    }
}

/// Waits for what Leave and Delete do after answering.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn join_polices_then_makes_a_marked_veth_routed_to_its_address() {
    let h = host();
    let pool = h.network().await;
    let (ep, ip) = h.endpoint(&pool, 1).await;
    let info = h
        .driver
        .join(NET, &ep, "/var/run/docker/netns/x")
        .await
        .unwrap();
    let veth = host_veth_name(&ep);

    assert_eq!(info.gateway, Ipv4Addr::new(169, 254, 1, 1));
    assert!(info.src_name.starts_with("tbtmp"), "{}", info.src_name);
    let calls = h.kernel.calls();
    let create = calls
        .iter()
        .position(|c| c.starts_with("create veth"))
        .unwrap();
    assert!(calls[create].contains(&veth) && calls[create].ends_with("mtu 1500"));
    assert_eq!(h.kernel.alias(&veth), Some(owner_alias(&ep)));
    assert_eq!(h.kernel.alias(&info.src_name), Some(owner_alias(&ep)));
    assert!(h.kernel.routes().contains(&route_to(ip, &veth)));
    assert!(h.sysctl.configured().contains(&veth));
    // The endpoint's chains were in the firewall when the veth appeared.
    let policed = h.firewall.last();
    assert!(policed.ruleset.dispatch.from.contains_key(&veth));
    assert!(policed.ruleset.dispatch.to.contains_key(&veth));
}

#[tokio::test]
async fn join_leaves_a_foreign_link_of_the_same_name_alone() {
    let h = host();
    let pool = h.network().await;
    let (ep, _) = h.endpoint(&pool, 2).await;
    let veth = host_veth_name(&ep);
    h.kernel.add_foreign_link(&veth, false, None);

    let err = h.driver.join(NET, &ep, "/x").await.unwrap_err();
    assert!(
        matches!(err, Error::Dataplane(crate::dataplane::Error::Foreign(ref n)) if *n == veth),
        "{err}"
    );
    assert!(h.kernel.link_names().contains(&veth));
    assert!(
        !h.kernel
            .calls()
            .iter()
            .any(|c| c.starts_with("delete link"))
    );
}

#[tokio::test]
async fn leave_removes_the_veth_and_its_route() {
    let h = host();
    let pool = h.network().await;
    let (ep, ip) = h.endpoint(&pool, 3).await;
    h.driver.join(NET, &ep, "/x").await.unwrap();
    let veth = host_veth_name(&ep);

    h.driver.leave(NET, &ep).await.unwrap();
    eventually("the veth is deleted", || {
        !h.kernel.link_names().contains(&veth)
    })
    .await;
    assert!(!h.kernel.routes().contains(&route_to(ip, &veth)));
    // An unknown endpoint is an error that changes nothing.
    h.kernel.clear_calls();
    assert!(matches!(
        h.driver.leave(NET, &id(9)).await,
        Err(Error::UnknownEndpoint(_))
    ));
    assert!(h.kernel.calls().is_empty());
}

#[tokio::test]
async fn resync_removes_only_its_own_strays_and_restores_routes() {
    let h = host();
    let pool = h.network().await;
    let (ep, ip) = h.endpoint(&pool, 4).await;
    h.driver.join(NET, &ep, "/x").await.unwrap();
    let veth = host_veth_name(&ep);
    // Drift: the endpoint's route is gone; an orphan veth of tabby's (its
    // alias proves it) and a look-alike of someone else's are there.
    let links = HashMap::from([(veth.clone(), 1)]);
    use crate::dataplane::Kernel;
    h.kernel
        .delete_route(&route_to(ip, &veth), &links)
        .await
        .unwrap();
    let orphan = host_veth_name(&id(7));
    h.kernel
        .add_foreign_link(&orphan, true, Some(&owner_alias(&id(7))));
    h.kernel.add_foreign_link("tabbyuser0", true, None);
    let foreign_route = Route {
        dst: "198.18.99.0/24".parse().unwrap(),
        target: RouteTarget::Blackhole,
    };
    h.kernel.add_foreign_route(foreign_route.clone());

    let report = h.driver.resync().await.unwrap();
    assert_eq!(report.links_removed, vec![orphan.clone()]);
    assert!(report.routes_added.contains(&route_to(ip, &veth)));
    assert!(h.kernel.routes().contains(&route_to(ip, &veth)));
    assert!(h.kernel.link_names().contains(&"tabbyuser0".to_string()));
    assert!(h.kernel.routes().contains(&foreign_route));
    // Converged: a second pass changes nothing.
    h.kernel.clear_calls();
    let again = h.driver.resync().await.unwrap();
    assert!(again.links_removed.is_empty() && again.routes_added.is_empty());
    assert!(h.kernel.calls().is_empty(), "{:?}", h.kernel.calls());
}

#[tokio::test]
async fn drift_repair_reports_what_the_firewall_rewrote() {
    let h = host();
    h.firewall
        .drift
        .lock()
        .unwrap()
        .push("chain TABBY-FORWARD missing".into());
    assert_eq!(
        h.driver.repair_drift().await.unwrap(),
        vec!["chain TABBY-FORWARD missing".to_string()]
    );
    assert!(h.driver.repair_drift().await.unwrap().is_empty());
}

#[tokio::test]
async fn ipam_check_judges_by_docker_and_repairs_only_when_asked() {
    let h = host();
    let pool = h.network().await;
    let (live_ep, live_ip) = h.endpoint(&pool, 5).await;
    let (gone_ep, _) = h.endpoint(&pool, 6).await;
    h.driver.join(NET, &live_ep, "/x").await.unwrap();
    h.live(&[(live_ep.clone(), live_ip)]);

    let report = h.check(false).await;
    let stale: Vec<_> = report
        .findings
        .stale_endpoints
        .iter()
        .map(|e| &e.id)
        .collect();
    assert_eq!(stale, vec![&gone_ep]);
    assert!(report.repaired.is_empty());
    assert!(h.recorded(&gone_ep).await);

    let repaired = h.check(true).await;
    assert!(!repaired.repaired.is_empty(), "{repaired:?}");
    assert!(!h.recorded(&gone_ep).await);
    assert!(h.recorded(&live_ep).await);
    let after = h.check(false).await;
    assert!(after.findings.is_clean(), "{:?}", after.findings);
}

#[tokio::test]
async fn ipam_check_judges_nothing_when_docker_does_not_know_the_network() {
    let h = host();
    let pool = h.network().await;
    let (ep, _) = h.endpoint(&pool, 8).await;
    // No network in the fake Docker: liveness unknown.
    let report = h.check(true).await;
    assert_eq!(report.findings.unknown_networks, vec![NET.to_string()]);
    assert!(report.repaired.is_empty());
    assert!(h.recorded(&ep).await);
}

#[path = "tests_collisions.rs"]
mod collisions;

#[path = "tests_ipv6.rs"]
mod ipv6;
