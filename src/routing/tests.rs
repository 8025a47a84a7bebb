use chrono::Utc;

use super::*;
use crate::model::Handle;

fn node(name: &str, ip: &str) -> Node {
    Node {
        hostname: name.into(),
        ip: ip.parse().unwrap(),
        started: Utc::now(),
        version: "t".into(),
    }
}

fn block(cidr: &str, owner: &str, holders: &[(u32, &str)]) -> Block {
    let mut b = Block::new(
        cidr.parse().unwrap(),
        "192.168.0.0/16".parse().unwrap(),
        Some(owner.into()),
    );
    for (ord, h) in holders {
        b.allocations.insert(*ord, Handle::for_host(h));
    }
    b
}

fn r(dst: &str, target: &str) -> Route {
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
