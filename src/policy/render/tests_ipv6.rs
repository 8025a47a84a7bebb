//! Exposures of dual-stack endpoints: which family's maps their
//! connections are found in.

use std::net::SocketAddr;

use super::tests::{ep, render_exposed};
use super::*;
use crate::model::Protocol;
use crate::policy::rules::default_profile;

fn exposure(host_port: u16, target: &Endpoint, host_ip: Option<&str>) -> Exposure {
    Exposure {
        protocol: Protocol::Tcp,
        port: 80,
        host_port,
        target: target.id.clone(),
        interface: None,
        docker_endpoint: None,
        host_ip: host_ip.map(|ip| ip.parse().unwrap()),
    }
}

/// Map name -> (host port, destination) of its entries.
fn entries(state: &PolicyState) -> BTreeMap<String, Vec<(u16, SocketAddr)>> {
    state
        .ruleset
        .nat
        .maps
        .iter()
        .filter(|(_, m)| !m.entries.is_empty())
        .map(|(name, m)| {
            let entries = m.entries.iter().map(|(k, to)| (k.port, *to)).collect();
            (name.clone(), entries)
        })
        .collect()
}

#[test]
fn exposures_reach_each_family_their_host_address_admits() {
    let mut dual = ep("a", "198.18.64.1", "A");
    dual.ip6 = Some("2001:2:0:1000::1".parse().unwrap());
    let v4_only = ep("b", "198.18.64.2", "A");
    let exposures = [
        exposure(8001, &dual, None),
        exposure(8002, &dual, Some("::")),
        exposure(8003, &dual, Some("2001:2::11")),
        exposure(8004, &dual, Some("198.18.0.11")),
        exposure(8005, &v4_only, None),
    ];
    let eps = [dual, v4_only];
    let state = render_exposed(&eps, &[default_profile("A")], &exposures);
    let to = |text: &str| text.parse::<SocketAddr>().unwrap();
    let (v4, v6) = (to("198.18.64.1:80"), to("[2001:2:0:1000::1]:80"));
    let b = to("198.18.64.2:80");
    let got = entries(&state);
    let want: BTreeMap<String, Vec<(u16, SocketAddr)>> = [
        ("tabby-pre-any", vec![(8001, v4), (8005, b)]),
        ("tabby-pre-any6", vec![(8001, v6), (8002, v6)]),
        ("tabby-pre-addr", vec![(8004, v4)]),
        ("tabby-pre-addr6", vec![(8003, v6)]),
        ("tabby-out-any", vec![(8001, v4), (8005, b)]),
        ("tabby-out-any6", vec![(8001, v6), (8002, v6)]),
        ("tabby-out-addr", vec![(8004, v4)]),
        ("tabby-out-addr6", vec![(8003, v6)]),
    ]
    .into_iter()
    .map(|(n, e)| (n.to_string(), e))
    .collect();
    assert_eq!(got, want);
    // The IPv6 maps' rules name their family where the key has no
    // address to imply it.
    let pre = state.ruleset.nat.rules(PREROUTING).unwrap();
    for rule in pre {
        let Verdict::DnatMap(name, kind) = &rule.verdict else {
            panic!("{rule:?}");
        };
        assert_eq!(name.ends_with('6'), kind.v6);
        let stated = kind.v6 && !kind.addr;
        assert_eq!(rule.matches.contains(&Match::Ipv6), stated, "{rule:?}");
    }
    assert_eq!(pre.len(), 8, "four kinds, two families");
}
