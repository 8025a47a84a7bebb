//! IPv6 routes beside IPv4 ones: the same blackholes, block and borrowed
//! routes, via each host's IPv6 address.

use std::collections::{BTreeSet, HashSet};

use chrono::Utc;

use super::tests::{block_in as block, node_with, r};
use super::*;

fn node(name: &str, ip: &str, ip6: Option<&str>) -> Node {
    node_with(name, ip, ip6, Some("198.18.0.0/24"))
}

fn pool(cidr: &str, block_prefix: u8) -> Pool {
    Pool {
        cidr: cidr.parse().unwrap(),
        block_prefix,
        created: Utc::now(),
        vxlan: Default::default(),
    }
}

const V6: &str = "2001:2:0:1000::/56";

/// h1 owns a v4 and a v6 block and lends a v6 address to h2; h2 owns a v6
/// block; h3 has no IPv6 address.
fn scenario() -> (Vec<Pool>, Vec<Block>, Vec<Node>) {
    let pools = vec![pool("198.19.0.0/20", 26), pool(V6, 122)];
    let blocks = vec![
        block("198.19.0.0/26", "198.19.0.0/20", "h1", &[(1, "h1")]),
        block("2001:2:0:1000::/122", V6, "h1", &[(1, "h1"), (2, "h2")]),
        block("2001:2:0:1000::40/122", V6, "h2", &[(0, "h2")]),
        block("2001:2:0:1000::80/122", V6, "h3", &[(0, "h3")]),
    ];
    let nodes = vec![
        node("h1", "198.18.0.11", Some("2001:2::11")),
        node("h2", "198.18.0.12", Some("2001:2::12")),
        node("h3", "198.18.0.13", None),
    ];
    (pools, blocks, nodes)
}

fn routes(host: &str, mode: Mode) -> BTreeSet<Route> {
    let (pools, blocks, nodes) = scenario();
    let alive: HashSet<String> = ["h1", "h2", "h3"].map(String::from).into();
    let view = ClusterView {
        pools: &pools,
        blocks: &blocks,
        nodes: &nodes,
        alive: &alive,
        mode,
    };
    desired_routes(host, &view)
}

#[test]
fn ipv6_blocks_and_borrowed_addresses_go_via_ipv6_addresses() {
    let h1: BTreeSet<_> = [
        r("198.19.0.0/20", "blackhole"),
        r("198.19.0.0/26", "blackhole"),
        r(V6, "blackhole"),
        r("2001:2:0:1000::/122", "blackhole"),
        r("2001:2:0:1000::2/128", "2001:2::12"),
        r("2001:2:0:1000::40/122", "2001:2::12"),
    ]
    .into();
    assert_eq!(
        routes("h1", Mode::Direct),
        h1,
        "h3 has no IPv6: no route to it"
    );
    let h2: BTreeSet<_> = [
        r("198.19.0.0/20", "blackhole"),
        r("198.19.0.0/26", "198.18.0.11"),
        r(V6, "blackhole"),
        r("2001:2:0:1000::/122", "2001:2::11"),
        r("2001:2:0:1000::40/122", "blackhole"),
    ]
    .into();
    assert_eq!(
        routes("h2", Mode::Direct),
        h2,
        "h2 routes its borrowed ::2 down its veth"
    );
}

#[test]
fn in_bgp_mode_the_agent_keeps_only_its_ipv6_blackholes() {
    let h1: BTreeSet<_> = [
        r("198.19.0.0/20", "blackhole"),
        r("198.19.0.0/26", "blackhole"),
        r(V6, "blackhole"),
        r("2001:2:0:1000::/122", "blackhole"),
    ]
    .into();
    assert_eq!(routes("h1", Mode::Bgp), h1);
}
