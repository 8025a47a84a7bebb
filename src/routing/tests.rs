use chrono::Utc;

use super::*;
use crate::model::Handle;

/// A node record; `ip6` and `subnet` as its agent would record them.
pub(super) fn node_with(name: &str, ip: &str, ip6: Option<&str>, subnet: Option<&str>) -> Node {
    Node {
        hostname: name.into(),
        ip: ip.parse().unwrap(),
        started: Utc::now(),
        version: "t".into(),
        subnet: subnet.map(|s| s.parse().unwrap()),
        vxlan_mac: None,
        ip6: ip6.map(|a| a.parse().unwrap()),
    }
}

fn node(name: &str, ip: &str) -> Node {
    node_with(name, ip, None, None)
}

/// A block of `pool` claimed by `owner`, with `holders` by ordinal.
pub(super) fn block_in(cidr: &str, pool: &str, owner: &str, holders: &[(u32, &str)]) -> Block {
    let mut b = Block::new(
        cidr.parse().unwrap(),
        pool.parse().unwrap(),
        Some(owner.into()),
    );
    for (ord, h) in holders {
        b.allocations.insert(*ord, Handle::for_host(h));
    }
    b
}

fn block(cidr: &str, owner: &str, holders: &[(u32, &str)]) -> Block {
    block_in(cidr, "192.168.0.0/16", owner, holders)
}

pub(super) fn r(dst: &str, target: &str) -> Route {
    let target = match target {
        "blackhole" => RouteTarget::Blackhole,
        gw => RouteTarget::Via(gw.parse().unwrap()),
    };
    Route {
        dst: dst.parse().unwrap(),
        target,
    }
}

/// The seed scenario: .50 on h1 claimed the block, .51 (h2) and .52 (h3)
/// are borrowed from it; h2 also has a block of its own.
fn scenario() -> (Vec<Pool>, Vec<Block>, Vec<Node>) {
    let pools = vec![Pool {
        cidr: "192.168.0.0/16".parse().unwrap(),
        block_prefix: 26,
        created: Utc::now(),
        vxlan: Default::default(),
    }];
    let blocks = vec![
        block(
            "192.168.0.0/26",
            "h1",
            &[(50, "h1"), (51, "h2"), (52, "h3")],
        ),
        block("192.168.1.0/26", "h2", &[(0, "h2")]),
    ];
    let nodes = vec![
        node("h1", "198.18.0.11"),
        node("h2", "198.18.0.12"),
        node("h3", "198.18.0.13"),
    ];
    (pools, blocks, nodes)
}

#[test]
fn every_host_gets_blocks_via_owners_borrowed_32s_and_blackholes() {
    let (pools, blocks, nodes) = scenario();
    let alive: HashSet<String> = ["h1", "h2", "h3"].map(String::from).into();
    let view = ClusterView {
        pools: &pools,
        blocks: &blocks,
        nodes: &nodes,
        alive: &alive,
        mode: Mode::Direct,
    };

    let h1: BTreeSet<_> = [
        r("192.168.0.0/16", "blackhole"),
        r("192.168.0.0/26", "blackhole"),
        r("192.168.0.51/32", "198.18.0.12"),
        r("192.168.0.52/32", "198.18.0.13"),
        r("192.168.1.0/26", "198.18.0.12"),
    ]
    .into();
    assert_eq!(desired_routes("h1", &view), h1);

    let h3: BTreeSet<_> = [
        r("192.168.0.0/16", "blackhole"),
        r("192.168.0.0/26", "198.18.0.11"),
        r("192.168.0.51/32", "198.18.0.12"),
        r("192.168.1.0/26", "198.18.0.12"),
    ]
    .into();
    assert_eq!(
        desired_routes("h3", &view),
        h3,
        "h3 routes its own .52 down its veth"
    );
}

#[test]
fn a_host_that_is_down_gets_no_routes_towards_it() {
    let (pools, blocks, nodes) = scenario();
    let alive: HashSet<String> = ["h1", "h3"].map(String::from).into();
    let view = ClusterView {
        pools: &pools,
        blocks: &blocks,
        nodes: &nodes,
        alive: &alive,
        mode: Mode::Direct,
    };
    let h1 = desired_routes("h1", &view);
    assert!(
        !h1.iter()
            .any(|r| r.target == RouteTarget::Via("198.18.0.12".parse().unwrap()))
    );
    assert!(h1.contains(&r("192.168.0.52/32", "198.18.0.13")));
}

#[test]
fn in_bgp_mode_only_blackholes_are_the_agents() {
    let (pools, blocks, nodes) = scenario();
    let alive: HashSet<String> = ["h1", "h2", "h3"].iter().map(|s| s.to_string()).collect();
    let view = ClusterView {
        pools: &pools,
        blocks: &blocks,
        nodes: &nodes,
        alive: &alive,
        mode: Mode::Bgp,
    };
    let h1 = desired_routes("h1", &view);
    assert_eq!(
        h1,
        [
            r("192.168.0.0/16", "blackhole"),
            r("192.168.0.0/26", "blackhole")
        ]
        .into_iter()
        .collect()
    );
}

/// h1 and h2 on 198.18.0.0/24, h3 on 198.18.1.0/24, each with a block;
/// every node has a tunnel MAC but h2, an agent from before VXLAN.
fn two_subnets(mode: VxlanMode) -> (Vec<Pool>, Vec<Block>, Vec<Node>) {
    let (mut pools, _, _) = scenario();
    pools[0].vxlan = mode;
    let blocks = vec![
        block("192.168.0.0/26", "h1", &[(1, "h1")]),
        block("192.168.1.0/26", "h2", &[(1, "h2")]),
        block("192.168.2.0/26", "h3", &[(1, "h3"), (2, "h1")]),
    ];
    let mut nodes = vec![
        node("h1", "198.18.0.11"),
        node("h2", "198.18.0.12"),
        node("h3", "198.18.1.13"),
    ];
    for (n, subnet, mac) in [
        (0, "198.18.0.0/24", Some("0e:00:00:00:00:01")),
        (1, "198.18.0.0/24", None),
        (2, "198.18.1.0/24", Some("0e:00:00:00:00:03")),
    ] {
        nodes[n].subnet = Some(subnet.parse().unwrap());
        nodes[n].vxlan_mac = mac.map(str::to_string);
    }
    (pools, blocks, nodes)
}

fn tunnel(dst: &str, peer: &str) -> Route {
    Route {
        dst: dst.parse().unwrap(),
        target: RouteTarget::Tunnel(peer.parse().unwrap()),
    }
}

/// Whether any route goes to exactly `dst`.
fn routes_to(routes: &BTreeSet<Route>, dst: &str) -> bool {
    routes.iter().any(|r| r.dst == dst.parse().unwrap())
}

fn routes_in(mode: VxlanMode, host: &str) -> (BTreeSet<Route>, Option<Vec<Ipv4Addr>>) {
    let (pools, blocks, nodes) = two_subnets(mode);
    let alive: HashSet<String> = ["h1", "h2", "h3"].map(String::from).into();
    let view = ClusterView {
        pools: &pools,
        blocks: &blocks,
        nodes: &nodes,
        alive: &alive,
        mode: Mode::Direct,
    };
    let routes = desired_routes(host, &view);
    let peers = desired_tunnel(&view, &routes).map(|p| p.into_keys().collect());
    (routes, peers)
}

#[test]
fn cross_subnet_tunnels_only_towards_the_other_subnet() {
    let (h1, peers) = routes_in(VxlanMode::CrossSubnet, "h1");
    assert!(h1.contains(&r("192.168.1.0/26", "198.18.0.12")), "{h1:?}");
    assert!(
        h1.contains(&tunnel("192.168.2.0/26", "198.18.1.13")),
        "{h1:?}"
    );
    assert_eq!(peers, Some(vec!["198.18.1.13".parse().unwrap()]));
    // h3 tunnels to h1 (its borrowed /32 in h3's block stays on h1), and
    // has no route to h2, whose agent has no tunnel.
    let (h3, peers) = routes_in(VxlanMode::CrossSubnet, "h3");
    assert!(
        h3.contains(&tunnel("192.168.0.0/26", "198.18.0.11")),
        "{h3:?}"
    );
    assert!(!routes_to(&h3, "192.168.1.0/26"), "{h3:?}");
    assert_eq!(peers, Some(vec!["198.18.0.11".parse().unwrap()]));
    // h1's address in h3's block: routed on h1's subnet, tunnelled on h3's.
    let (h2, _) = routes_in(VxlanMode::CrossSubnet, "h2");
    assert!(h2.contains(&r("192.168.2.2/32", "198.18.0.11")), "{h2:?}");
    assert!(
        h2.contains(&tunnel("192.168.2.0/26", "198.18.1.13")),
        "{h2:?}"
    );
}

#[test]
fn always_tunnels_everywhere_and_never_nowhere() {
    let (h1, peers) = routes_in(VxlanMode::Always, "h1");
    assert!(
        h1.contains(&tunnel("192.168.2.0/26", "198.18.1.13")),
        "{h1:?}"
    );
    // h2 has no tunnel: with every route tunnelled, h1 has none to it.
    assert!(!routes_to(&h1, "192.168.1.0/26"), "{h1:?}");
    assert_eq!(peers, Some(vec!["198.18.1.13".parse().unwrap()]));
    // Never: h3, on another subnet, is no next hop; h2 is.
    let (h1, peers) = routes_in(VxlanMode::Never, "h1");
    assert!(h1.contains(&r("192.168.1.0/26", "198.18.0.12")), "{h1:?}");
    assert!(!routes_to(&h1, "192.168.2.0/26"), "{h1:?}");
    assert!(
        !h1.iter()
            .any(|r| matches!(r.target, RouteTarget::Tunnel(_)))
    );
    assert_eq!(peers, None, "no pool encapsulates: no device");
}

#[test]
fn tunnel_peers_come_from_the_routes_given() {
    let (pools, blocks, nodes) = two_subnets(VxlanMode::Always);
    let alive: HashSet<String> = ["h1", "h2", "h3"].map(String::from).into();
    let view = ClusterView {
        pools: &pools,
        blocks: &blocks,
        nodes: &nodes,
        alive: &alive,
        mode: Mode::Direct,
    };
    // The device stays (a pool encapsulates) but has no peer to reach.
    assert_eq!(
        desired_tunnel(&view, &BTreeSet::new()),
        Some(BTreeMap::new())
    );
}

#[test]
fn in_bgp_mode_the_agent_routes_only_what_goes_through_the_tunnel() {
    let (pools, blocks, nodes) = two_subnets(VxlanMode::CrossSubnet);
    let alive: HashSet<String> = ["h1", "h2", "h3"].map(String::from).into();
    let view = ClusterView {
        pools: &pools,
        blocks: &blocks,
        nodes: &nodes,
        alive: &alive,
        mode: Mode::Bgp,
    };
    let h1 = desired_routes("h1", &view);
    assert!(
        h1.contains(&tunnel("192.168.2.0/26", "198.18.1.13")),
        "{h1:?}"
    );
    // h2, on h1's subnet, is BIRD's to route.
    assert!(!routes_to(&h1, "192.168.1.0/26"), "{h1:?}");
}
