//! BGP across two L2 segments (4 hosts, mesh off): every host peers with
//! the tor router, whose BIRD (AS 64513) re-announces what it learns.
//! Containers reach each other across the tor by their /32, with no
//! encapsulation; removals and a dead agent are withdrawn.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Lab, eventually};

const HOSTS: [&str; 4] = ["h1", "h2", "h3", "h4"];
/// Seconds; the lab's agents run with this hold time.
const HOLD_TIME: u64 = 10;

/// hN is on segment 1 for odd N, 2 for even N.
fn host_ip(host: &str) -> String {
    let n: u8 = host[1..].parse().unwrap();
    format!("198.18.{}.{}", (n - 1) % 2, 10 + n)
}

fn tor_ip(host: &str) -> String {
    let n: u8 = host[1..].parse().unwrap();
    format!("198.18.{}.1", (n - 1) % 2)
}

fn tor_routes(lab: &Lab) -> String {
    support::stdout(&lab.run("tor", &["ip", "route", "show", "proto", "bird"]))
}

/// Block -> owner.
fn blocks(lab: &Lab) -> BTreeMap<String, String> {
    let ipam: Value = serde_json::from_str(&lab.sh("h1", "tabby ipam show -o json")).unwrap();
    ipam.as_object()
        .unwrap()
        .iter()
        .map(|(cidr, b)| (cidr.clone(), b["affinity"].as_str().unwrap().to_string()))
        .collect()
}

fn session_since(lab: &Lab, host: &str) -> Vec<(String, String)> {
    let out = lab.sh(host, "tabby bgp status -o json");
    let sessions: Vec<Value> = serde_json::from_str(&out).unwrap();
    sessions
        .iter()
        .filter(|s| s["info"].as_str().unwrap_or("").starts_with("Established"))
        .map(|s| {
            (
                s["peer"].as_str().unwrap().to_string(),
                s["since"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn hosts_on_two_segments_route_through_the_tor() {
    let lab = Lab::up_with(
        4,
        &[
            ("TABBY_LAB_SEGMENTS", "2"),
            ("TABBY_LAB_TOR_BGP", "1"),
            ("TABBY_LAB_ROUTING", "bgp"),
            ("TABBY_BGP_HOLD_TIME", "10"),
        ],
    );
    lab.sh("h1", "tabby bgp mesh off");
    for host in HOSTS {
        lab.sh(
            "h1",
            &format!(
                "tabby bgp peer add {} --as 64513 --node {host}",
                tor_ip(host)
            ),
        );
    }
    lab.sh("h1", "tabby network create n1 --subnet 198.19.32.0/20");
    let mut ips = BTreeMap::new();
    for host in HOSTS {
        let name = format!("c{host}");
        lab.sh(
            host,
            &format!("docker run -d --name {name} --net n1 tabby/busybox sleep 1d"),
        );
        ips.insert(host, lab.container_ip(host, &name));
    }

    // The tor learned every host's block from that host.
    let owned = blocks(&lab);
    assert_eq!(owned.len(), 4, "{owned:?}");
    eventually(Duration::from_secs(30), "every block on the tor", || {
        let routes = tor_routes(&lab);
        owned
            .iter()
            .all(|(cidr, owner)| routes.contains(&format!("{cidr} via {} ", host_ip(owner))))
            .then_some(())
    });
    // h1 reaches h2's block through its segment's router, by BGP.
    let h2_block = owned.iter().find(|(_, o)| *o == "h2").unwrap().0;
    eventually(
        Duration::from_secs(20),
        "h2's block on h1 via the tor",
        || {
            lab.sh("h1", "ip route show proto bird")
                .contains(&format!("{h2_block} via 198.18.0.1 dev eth0"))
                .then_some(())
        },
    );

    // Segment 1 to segment 2 and back, plain IP: no tunnel devices.
    for (from, to) in [
        ("h1", "h2"),
        ("h1", "h4"),
        ("h3", "h2"),
        ("h4", "h1"),
        ("h1", "h3"),
    ] {
        let target = &ips[to];
        eventually(
            Duration::from_secs(20),
            &format!("c{from} reaching c{to}"),
            || lab.pings(from, &format!("c{from}"), target).then_some(()),
        );
    }
    for host in HOSTS {
        let links = lab.sh(host, "ip -d link show");
        assert!(
            !links.contains("vxlan") && !links.contains("ipip"),
            "{host}: {links}"
        );
    }

    a_new_peer_leaves_other_sessions_up(&lab);
    removals_are_withdrawn(&lab, &ips);
    a_dead_agent_is_withdrawn(&lab, &owned);
}

/// A new peer changes h1's configuration; its other session stays up
/// (BIRD's `configure` restarts only what a change concerns).
fn a_new_peer_leaves_other_sessions_up(lab: &Lab) {
    let before = session_since(lab, "h1");
    assert_eq!(before.len(), 1, "{before:?}");
    // The peer is the lab's client namespace (no BGP there: the session
    // stays in Active), so the attempts reach only what this test made.
    let client = lab.command(&["client"]).output().unwrap();
    assert!(client.status.success(), "{}", support::stderr(&client));
    lab.sh("h1", "tabby bgp peer add 198.18.0.200 --as 64999 --node h1");
    eventually(
        Duration::from_secs(10),
        "two sessions configured on h1",
        || {
            let out = lab.sh("h1", "tabby bgp status -o json");
            (serde_json::from_str::<Vec<Value>>(&out).unwrap().len() == 2).then_some(())
        },
    );
    assert_eq!(
        session_since(lab, "h1"),
        before,
        "the tor session was reset"
    );
    lab.sh("h1", "tabby bgp peer remove 198.18.0.200 --node h1");
}

/// An address of h1's block held on h2: its /32 reaches the tor and h1,
/// and leaves both when the container goes.
fn removals_are_withdrawn(lab: &Lab, ips: &BTreeMap<&str, String>) {
    let h1_ip: std::net::Ipv4Addr = ips["h1"].parse().unwrap();
    let borrowed = std::net::Ipv4Addr::from(u32::from(h1_ip) + 5).to_string();
    lab.sh(
        "h2",
        &format!("docker run -d --name b2 --net n1 --ip {borrowed} tabby/busybox sleep 1d"),
    );
    let needle = format!("{borrowed} via ");
    eventually(
        Duration::from_secs(20),
        "the borrowed /32 on the tor and h1",
        || {
            (tor_routes(lab).contains(&needle)
                && lab.sh("h1", "ip route show proto bird").contains(&needle))
            .then_some(())
        },
    );
    assert!(lab.pings("h1", "ch1", &borrowed));
    lab.sh("h2", "docker rm -f b2");
    eventually(
        Duration::from_secs(20),
        "the removed container's /32 to go",
        || {
            (!tor_routes(lab).contains(&needle)
                && !lab.sh("h1", "ip route show proto bird").contains(&needle))
            .then_some(())
        },
    );
}

/// h4's agent stops for good: BIRD goes with it, and once graceful
/// restart gives up (the hold time) its block leaves the tor and h1.
fn a_dead_agent_is_withdrawn(lab: &Lab, owned: &BTreeMap<String, String>) {
    let h4_block = owned.iter().find(|(_, o)| *o == "h4").unwrap().0.clone();
    let on_h1 = || lab.sh("h1", "ip route show proto bird").contains(&h4_block);
    assert!(on_h1() && tor_routes(lab).contains(&h4_block));
    lab.stop("h4", "agent");
    let stopped = Instant::now();
    eventually(
        Duration::from_secs(HOLD_TIME + 5),
        "h4's block withdrawn within the hold time",
        || (!on_h1() && !tor_routes(lab).contains(&h4_block)).then_some(()),
    );
    eprintln!(
        "h4's block withdrawn {:.1} s after its agent stopped",
        stopped.elapsed().as_secs_f64()
    );
    // The others stay.
    let h2_block = owned.iter().find(|(_, o)| *o == "h2").unwrap().0;
    assert!(
        lab.sh("h1", "ip route show proto bird")
            .contains(h2_block.as_str())
    );
}
