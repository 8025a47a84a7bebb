//! What `tabby ipam check` compares: the allocations a host holds, the
//! endpoints tabby recorded for it, the endpoints Docker says are live,
//! and the host's tabby links and routes. Pure: gathering and repairing
//! happen in the driver.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::dataplane::{Route, RouteTarget, peer_veth_name};
use crate::model::{Endpoint, Handle};

/// One host's state, as read.
pub struct Inventory<'a> {
    pub host: &'a str,
    /// Addresses held for this host, with their handles.
    pub allocations: &'a [(IpAddr, Handle)],
    /// tabby's endpoint records of this host.
    pub endpoints: &'a [Endpoint],
    /// Endpoints Docker reports on this host (ID -> addresses); None when
    /// Docker cannot be asked, and then nothing is judged by it.
    pub live: Option<&'a HashMap<String, Vec<IpAddr>>>,
    /// Who holds each endpoint's address.
    pub holders: &'a HashMap<IpAddr, Handle>,
    pub links: &'a [String],
    pub routes: &'a [Route],
    /// Younger records may belong to a call in flight.
    pub grace: Duration,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    /// Held for this host by no live endpoint.
    pub leaked_allocations: Vec<(IpAddr, Handle)>,
    /// Recorded, but Docker no longer has them.
    pub stale_endpoints: Vec<Endpoint>,
    /// Live endpoints whose address is not allocated to them.
    pub unallocated_endpoints: Vec<Endpoint>,
    /// tabby links and /32 routes that no endpoint record owns.
    pub stray_links: Vec<String>,
    pub stray_routes: Vec<Route>,
    /// Docker could not be asked: allocations and endpoints were not judged.
    pub docker_unknown: bool,
    /// Networks Docker answered 404 for: liveness unknown, so allocations
    /// and endpoints were not judged either.
    #[serde(default)]
    pub unknown_networks: Vec<String>,
}

impl Findings {
    pub fn is_clean(&self) -> bool {
        self.leaked_allocations.is_empty()
            && self.stale_endpoints.is_empty()
            && self.unallocated_endpoints.is_empty()
            && self.stray_links.is_empty()
            && self.stray_routes.is_empty()
    }
}

pub fn compare(inv: &Inventory) -> Findings {
    let settled = |time: DateTime<Utc>| inv.now - time >= inv.grace;
    let mut findings = Findings {
        docker_unknown: inv.live.is_none(),
        ..Findings::default()
    };
    let local: Vec<&Endpoint> = inv
        .endpoints
        .iter()
        .filter(|e| e.host == inv.host)
        .collect();
    if let Some(live) = inv.live {
        let live_ips: HashSet<IpAddr> = live.values().flatten().copied().collect();
        // Endpoints in their grace period still vouch for their address.
        let young_ips: HashSet<IpAddr> = local
            .iter()
            .filter(|e| !settled(e.created))
            .map(|e| IpAddr::V4(e.ip))
            .collect();
        for (ip, handle) in inv.allocations {
            let held_live = handle
                .endpoint
                .as_ref()
                .is_some_and(|id| live.contains_key(id))
                || live_ips.contains(ip);
            if handle.host == inv.host
                && settled(handle.time)
                && !held_live
                && !young_ips.contains(ip)
            {
                findings.leaked_allocations.push((*ip, handle.clone()));
            }
        }
        for endpoint in &local {
            if !settled(endpoint.created) {
                continue;
            }
            if !live.contains_key(&endpoint.id) {
                findings.stale_endpoints.push((*endpoint).clone());
                continue;
            }
            let owned = inv.holders.get(&IpAddr::V4(endpoint.ip)).is_some_and(|h| {
                h.host == inv.host && h.endpoint.as_ref().is_none_or(|id| *id == endpoint.id)
            });
            if !owned {
                findings.unallocated_endpoints.push((*endpoint).clone());
            }
        }
    }
    let owned_links: HashSet<String> = local
        .iter()
        .flat_map(|e| [e.veth.clone(), peer_veth_name(&e.id)])
        .collect();
    findings.stray_links = inv
        .links
        .iter()
        .filter(|l| !owned_links.contains(*l))
        .cloned()
        .collect();
    // A veth carries its endpoint's /32 and, dual-stack, its /128.
    let veth_ips: HashSet<(&str, IpAddr)> = local
        .iter()
        .flat_map(|e| {
            let v6 = e.ip6.map(|ip6| (e.veth.as_str(), ip6.into()));
            std::iter::once((e.veth.as_str(), e.ip.into())).chain(v6)
        })
        .collect();
    findings.stray_routes = inv
        .routes
        .iter()
        .filter(|r| match &r.target {
            RouteTarget::Dev(dev) if dev.starts_with("tabby") => {
                !veth_ips.contains(&(dev.as_str(), r.dst.addr()))
            }
            _ => false,
        })
        .cloned()
        .collect();
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(host: &str, endpoint: Option<&str>, age_secs: i64) -> Handle {
        Handle {
            host: host.into(),
            network: None,
            endpoint: endpoint.map(str::to_string),
            container: None,
            time: Utc::now() - Duration::seconds(age_secs),
        }
    }

    fn endpoint(id: &str, ip: &str, age_secs: i64) -> Endpoint {
        Endpoint {
            created: Utc::now() - Duration::seconds(age_secs),
            ..Endpoint::for_test(id, "h1", ip)
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn leaks_stale_records_and_strays_are_found_and_young_ones_spared() {
        let allocations = vec![
            (ip("10.0.0.1"), handle("h1", Some("live"), 600)),
            (ip("10.0.0.2"), handle("h1", None, 600)), // RequestAddress answered, nothing after
            (ip("10.0.0.3"), handle("h1", Some("gone"), 600)),
            (ip("10.0.0.4"), handle("h1", None, 1)), // in flight
            (ip("10.0.0.5"), handle("h2", None, 600)), // another host's
            (ip("10.0.0.6"), handle("h1", Some("young"), 600)),
        ];
        let endpoints = vec![
            endpoint("live", "10.0.0.1", 600),
            endpoint("gone", "10.0.0.3", 600),
            endpoint("young", "10.0.0.6", 1),
            endpoint("orphan", "10.0.0.7", 600), // live in Docker, address lost
        ];
        let live: HashMap<String, Vec<IpAddr>> = [("live", "10.0.0.1"), ("orphan", "10.0.0.7")]
            .iter()
            .map(|(id, a)| (id.to_string(), vec![ip(a)]))
            .collect();
        let holders: HashMap<IpAddr, Handle> = allocations.iter().cloned().collect();
        let links = vec![
            "tabbylive".to_string(),
            "tabbygone".to_string(),
            "tabbystray".to_string(),
        ];
        let routes = vec![
            crate::dataplane::endpoint_route(ip("10.0.0.1"), "tabbylive"),
            crate::dataplane::endpoint_route(ip("10.0.0.9"), "tabbystray"),
        ];
        let findings = compare(&Inventory {
            host: "h1",
            allocations: &allocations,
            endpoints: &endpoints,
            live: Some(&live),
            holders: &holders,
            links: &links,
            routes: &routes,
            grace: Duration::seconds(60),
            now: Utc::now(),
        });
        let leaked: Vec<IpAddr> = findings
            .leaked_allocations
            .iter()
            .map(|(a, _)| *a)
            .collect();
        assert_eq!(leaked, [ip("10.0.0.2"), ip("10.0.0.3")]);
        let stale: Vec<&str> = findings
            .stale_endpoints
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(stale, ["gone"]);
        let unallocated: Vec<&str> = findings
            .unallocated_endpoints
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(unallocated, ["orphan"]);
        assert_eq!(findings.stray_links, ["tabbystray"]);
        assert_eq!(findings.stray_routes.len(), 1);
        assert!(!findings.is_clean());
    }

    #[test]
    fn without_docker_nothing_is_judged_by_liveness() {
        let allocations = vec![(ip("10.0.0.2"), handle("h1", None, 600))];
        let endpoints = vec![endpoint("gone", "10.0.0.3", 600)];
        let findings = compare(&Inventory {
            host: "h1",
            allocations: &allocations,
            endpoints: &endpoints,
            live: None,
            holders: &HashMap::new(),
            links: &[],
            routes: &[],
            grace: Duration::seconds(60),
            now: Utc::now(),
        });
        assert!(
            findings.docker_unknown && findings.is_clean(),
            "{findings:?}"
        );
    }
}
