//! `ipam check --repair` over random states: it never frees an address
//! that a live endpoint holds, nor one that changed hands after the check.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use chrono::{Duration, Utc};
use proptest::prelude::*;
use tabby::ipam::Ipam;
use tabby::ipam::check::{Inventory, compare};
use tabby::model::{Endpoint, EndpointState, Handle};
use tabby::store::Store;

const LOCAL: &str = "h1";
const GRACE_SECS: i64 = 60;

#[derive(Debug, Clone)]
struct EndpointSpec {
    id: u8,
    ip: u8,
    local: bool,
    young: bool,
    /// Docker reports it, at this address ordinal (usually its own).
    live_at: Option<u8>,
}

#[derive(Debug, Clone)]
struct AllocSpec {
    local: bool,
    endpoint: Option<u8>,
    young: bool,
}

fn endpoint_spec() -> impl Strategy<Value = EndpointSpec> {
    (
        0u8..8,
        0u8..16,
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::option::weighted(
            0.6,
            prop_oneof![3 => Just(None), 1 => (0u8..16).prop_map(Some)],
        ),
    )
        .prop_map(|(id, ip, local, young, live)| EndpointSpec {
            id,
            ip,
            local,
            young,
            live_at: live.map(|at| at.unwrap_or(ip)),
        })
}

fn alloc_spec() -> impl Strategy<Value = AllocSpec> {
    (
        prop::bool::weighted(0.8),
        prop::option::of(0u8..10),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(local, endpoint, young)| AllocSpec {
            local,
            endpoint,
            young,
        })
}

fn addr4(ord: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 90, ord)
}

fn addr(ord: u8) -> IpAddr {
    IpAddr::V4(addr4(ord))
}

fn id(n: u8) -> String {
    format!("{n:02x}{}", "ab".repeat(31))
}

fn age(young: bool) -> Duration {
    Duration::seconds(if young { 5 } else { 600 })
}

fn endpoint(spec: &EndpointSpec) -> Endpoint {
    Endpoint {
        id: id(spec.id),
        network_id: "n".into(),
        host: if spec.local { LOCAL } else { "h2" }.into(),
        ip: addr4(spec.ip),
        ip6: None,
        veth: format!("tabby{:02x}", spec.id),
        mac: None,
        container: None,
        state: EndpointState::Joined,
        created: Utc::now() - age(spec.young),
        profiles: vec![],
        labels: BTreeMap::new(),
        sandbox: None,
        gateway: None,
    }
}

fn handle(spec: &AllocSpec) -> Handle {
    Handle {
        host: if spec.local { LOCAL } else { "h2" }.into(),
        network: None,
        endpoint: spec.endpoint.map(id),
        container: None,
        time: Utc::now() - age(spec.young),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn repair_never_frees_a_live_or_reassigned_address(
        endpoint_specs in prop::collection::vec(endpoint_spec(), 0..10),
        alloc_specs in prop::collection::btree_map(0u8..16, alloc_spec(), 0..16),
        docker_known in prop::bool::weighted(0.85),
        churn in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    ) {
        let endpoints: Vec<Endpoint> = endpoint_specs.iter().map(endpoint).collect();
        let live: HashMap<String, Vec<IpAddr>> = endpoint_specs
            .iter()
            .filter_map(|s| s.live_at.map(|at| (id(s.id), vec![addr(at)])))
            .collect();
        let allocations: Vec<(IpAddr, Handle)> =
            alloc_specs.iter().map(|(ip, s)| (addr(*ip), handle(s))).collect();
        let holders: HashMap<IpAddr, Handle> = allocations.iter().cloned().collect();
        let findings = compare(&Inventory {
            host: LOCAL,
            allocations: &allocations,
            endpoints: &endpoints,
            live: docker_known.then_some(&live),
            holders: &holders,
            links: &[],
            routes: &[],
            grace: Duration::seconds(GRACE_SECS),
            now: Utc::now(),
        });
        if !docker_known {
            prop_assert!(findings.leaked_allocations.is_empty() && findings.stale_endpoints.is_empty());
        }
        for (ip, h) in &findings.leaked_allocations {
            prop_assert!(!live.values().flatten().any(|a| a == ip), "{ip} is live, judged leaked");
            prop_assert!(h.endpoint.as_ref().is_none_or(|e| !live.contains_key(e)), "{ip}'s endpoint is live");
            prop_assert!(h.host == LOCAL, "{ip} of another host judged");
            let young_owner = endpoints.iter().any(|e| e.host == LOCAL && IpAddr::V4(e.ip) == *ip && Utc::now() - e.created < Duration::seconds(GRACE_SECS));
            prop_assert!(!young_owner, "{ip} of an endpoint in its grace period judged leaked");
        }
        for e in &findings.stale_endpoints {
            prop_assert!(!live.contains_key(&e.id), "live endpoint {} judged stale", e.id);
        }
        crate::run(repair_in_store(allocations, findings.leaked_allocations, live, churn));
    }
}

/// Seeds a store with the allocations, lets some leaked addresses change
/// hands (released, then given to a new container) and repairs the rest
/// the way the driver does: only what the check saw is freed.
async fn repair_in_store(
    allocations: Vec<(IpAddr, Handle)>,
    leaked: Vec<(IpAddr, Handle)>,
    live: HashMap<String, Vec<IpAddr>>,
    churn: Vec<prop::sample::Index>,
) {
    let store = Store::in_memory();
    let local = Ipam::new(store.clone(), LOCAL);
    let pool = local
        .add_pool("198.18.90.0/28".parse().unwrap(), 28)
        .await
        .unwrap();
    for (ip, h) in &allocations {
        let ipam = Ipam::new(store.clone(), &h.host);
        ipam.allocate(&pool, Some(*ip), h.clone()).await.unwrap();
    }
    let mut reassigned = HashMap::new();
    if !leaked.is_empty() {
        for index in churn {
            let (ip, _) = &leaked[index.index(leaked.len())];
            local.release(*ip).await.unwrap();
            let fresh = Handle {
                container: Some("newcomer".into()),
                ..Handle::for_host(LOCAL)
            };
            local
                .allocate(&pool, Some(*ip), fresh.clone())
                .await
                .unwrap();
            reassigned.insert(*ip, fresh);
        }
    }
    for (ip, h) in &leaked {
        local.release_if_held_by(*ip, h).await.unwrap();
    }
    for (ip, h) in &allocations {
        let now = local.holder(*ip).await.unwrap();
        if let Some(fresh) = reassigned.get(ip) {
            assert_eq!(
                now.as_ref(),
                Some(fresh),
                "{ip} freed after it changed hands"
            );
        } else if live.values().flatten().any(|a| a == ip)
            || h.endpoint.as_ref().is_some_and(|e| live.contains_key(e))
        {
            assert_eq!(now.as_ref(), Some(h), "live {ip} freed");
        }
    }
}
