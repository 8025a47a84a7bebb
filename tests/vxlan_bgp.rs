//! VXLAN with BGP routing (3 hosts on 2 segments, a plain tor, the
//! node-to-node mesh across it): with `--vxlan cross-subnet` BIRD routes
//! the host on this segment and the agent tunnels to the other segment,
//! whose BGP-learned next hop is the tor, which routes no pool. No host
//! announces another's block that it reaches through the tunnel.

mod support;

use std::time::Duration;

use support::{Lab, eventually};

const POOL: &str = "198.19.32.0/20";

fn block_of(lab: &Lab, host: &str) -> String {
    let ipam: serde_json::Value =
        serde_json::from_str(&lab.sh("h1", "tabby ipam show -o json")).unwrap();
    ipam.as_object()
        .unwrap()
        .iter()
        .find(|(_, b)| b["affinity"] == host)
        .map(|(cidr, _)| cidr.clone())
        .unwrap_or_else(|| panic!("no block of {host} in {ipam}"))
}

#[test]
fn bird_routes_the_segment_and_the_tunnel_crosses_the_tor() {
    let lab = Lab::up_with(
        3,
        &[("TABBY_LAB_ROUTING", "bgp"), ("TABBY_LAB_SEGMENTS", "2")],
    );
    lab.sh("h1", &format!("tabby pool add {POOL} --vxlan cross-subnet"));
    lab.sh("h1", &format!("tabby network create vx --subnet {POOL}"));
    let mut ips = Vec::new();
    for host in ["h1", "h2", "h3"] {
        let name = format!("c{host}");
        lab.sh(
            host,
            &format!("docker run -d --name {name} --net vx tabby/busybox sleep 1d"),
        );
        ips.push(lab.container_ip(host, &name));
    }
    let (h2_block, h3_block) = (block_of(&lab, "h2"), block_of(&lab, "h3"));
    eventually(Duration::from_secs(60), "h1's routes to h2 and h3", || {
        let routes = lab.sh("h1", "ip route");
        let line = |block: &str| {
            routes
                .lines()
                .find(|l| l.starts_with(&format!("{block} ")))
                .unwrap_or("")
                .to_string()
        };
        let (to_h2, to_h3) = (line(&h2_block), line(&h3_block));
        (to_h2.contains("via 198.18.1.12 dev tabby.vxlan proto 77 onlink")
            && to_h3.contains("via 198.18.0.13 dev eth0 proto bird"))
        .then_some(())
    });
    assert!(
        lab.pings("h1", "ch1", &ips[1]),
        "h1 to h2 through the tunnel"
    );
    assert!(lab.pings("h1", "ch1", &ips[2]), "h1 to h3 routed by BIRD");
    assert!(
        lab.pings("h2", "ch2", &ips[2]),
        "h2 to h3 through the tunnel"
    );
    // h2 holds an address of h3's block: h1 reaches that /32 through its
    // tunnel, and must not announce it as its own (its export takes
    // tabby's /32s); h3 learns it from h2 alone.
    let h3_ip: std::net::Ipv4Addr = ips[2].parse().unwrap();
    let borrowed = std::net::Ipv4Addr::from(u32::from(h3_ip) + 7);
    lab.sh(
        "h2",
        &format!("docker run -d --name b2 --net vx --ip {borrowed} tabby/busybox sleep 1d"),
    );
    eventually(
        Duration::from_secs(30),
        "h1's tunnel route to the /32",
        || {
            lab.sh("h1", "ip route")
                .lines()
                .any(|l| l.starts_with(&format!("{borrowed} via 198.18.1.12 dev tabby.vxlan")))
                .then_some(())
        },
    );
    let learned = eventually(Duration::from_secs(30), "h3 learning the /32", || {
        let out = lab.sh(
            "h3",
            &format!("birdc -s $TABBY_BIRD_DIR/bird.ctl show route {borrowed}/32 all"),
        );
        out.contains("from 198.18.1.12").then_some(out)
    });
    assert!(!learned.contains("from 198.18.0.11"), "{learned}");
    assert!(lab.pings("h1", "ch1", &borrowed.to_string()));
}
