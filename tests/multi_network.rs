//! Containers on several networks (issue 10), on one shared two-host lab:
//! a second tabby network by `docker network connect`, Docker's bridge
//! beside a tabby network in both orders, and a two-network Compose file.
//! Every blocked path is checked beside a path that must work.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::{Lab, eventually, shared_lab};

const NET1: &str = "198.18.100.0/24";
const NET2: &str = "198.18.101.0/24";
/// A user-defined bridge: its name sorts before `net1`, so Docker 20.10
/// gives it the default route whichever network came first.
const BRIDGE: &str = "abridge";
const BRIDGE_SUBNET: &str = "198.19.50.0/24";
const WAIT: Duration = Duration::from_secs(15);

/// h1 and h2 with net1 and net2 on both; on h2 `b1` (net1 only) and `b2`
/// (net2 only), the peers the tests reach across hosts. The tests run side
/// by side: the Compose file runs on h2, so that only the first test
/// gives a container of h1 a second gateway.
fn lab() -> Arc<Lab> {
    shared_lab(|| {
        let lab = Lab::up(2);
        lab.sh("h1", &format!("tabby network create net1 --subnet {NET1}"));
        lab.sh("h1", &format!("tabby network create net2 --subnet {NET2}"));
        for host in ["h1", "h2"] {
            eventually(WAIT, "net1 and net2 on every host", || {
                lab.try_sh(host, "docker network inspect net1 net2 >/dev/null")
                    .then_some(())
            });
        }
        for (name, net) in [("b1", "net1"), ("b2", "net2")] {
            run(&lab, "h2", name, net);
        }
        lab
    })
}

fn run(lab: &Lab, host: &str, name: &str, net: &str) {
    lab.sh(
        host,
        &format!("docker run -d --name {name} --net {net} tabby/busybox sleep 1d"),
    );
}

fn reaches(lab: &Lab, host: &str, container: &str, ip: &str) -> bool {
    eventually(WAIT, &format!("{container} reaches {ip}"), || {
        lab.pings(host, container, ip).then_some(true)
    })
}

/// `tabby endpoint show` rows of a container: (network ID, address).
fn endpoint_rows(lab: &Lab, container: &str) -> BTreeSet<(String, String)> {
    let json = lab.sh("h1", "tabby endpoint show -o json");
    let rows: Value = serde_json::from_str(&json).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["container"] == container)
        .map(|e| {
            let ip = e["ip"].as_str().unwrap().to_string();
            (e["network_id"].as_str().unwrap().to_string(), ip)
        })
        .collect()
}

#[test]
fn connect_to_a_second_tabby_network_and_disconnect() {
    let lab = lab();
    let (b1, b2) = (lab.container_ip("h2", "b1"), lab.container_ip("h2", "b2"));
    run(&lab, "h1", "two", "net1");
    lab.sh("h1", "docker network connect net2 two");
    let (a1, a2) = (
        lab.network_ip("h1", "two", "net1"),
        lab.network_ip("h1", "two", "net2"),
    );
    assert!(a1.starts_with("198.18.100.") && a2.starts_with("198.18.101."));

    // Each network's peers through that network's interface and gateway.
    assert_eq!(
        lab.route_get("h1", "two", &b1),
        ("eth0".into(), Some("169.254.1.1".into()))
    );
    assert_eq!(
        lab.route_get("h1", "two", &b2),
        ("eth1".into(), Some("169.254.1.2".into()))
    );
    assert!(reaches(&lab, "h1", "two", &b1));
    assert!(reaches(&lab, "h1", "two", &b2));
    // The host answers for the second gateway too.
    assert!(lab.routes("h1").contains("169.254.1.2 dev lo scope link"));

    // b2 shares only net2: it reaches `two` there, never at its net1
    // address (net1's profile admits net1's tag only).
    assert!(reaches(&lab, "h2", "b2", &a2));
    assert_eq!(lab.unreachable("h2", "b2", [&a1]), vec![a1.clone()]);

    // One row per interface, each with the container's name.
    let rows = eventually(WAIT, "two rows named `two`", || {
        let rows = endpoint_rows(&lab, "two");
        (rows.len() == 2).then_some(rows)
    });
    let ips: BTreeSet<String> = rows.iter().map(|(_, ip)| ip.clone()).collect();
    assert_eq!(ips, [a1.clone(), a2.clone()].into());
    let check = lab.run(
        "h1",
        &["tabby", "ipam", "check", "--host", "h1", "--grace", "0"],
    );
    assert!(
        check.status.success(),
        "{}{}",
        support::stdout(&check),
        support::stderr(&check)
    );

    // Disconnect takes exactly net2's interface, address and routes.
    lab.sh("h1", "docker network disconnect net2 two");
    assert!(!lab.try_sh("h1", "docker exec two ip link show eth1"));
    assert!(reaches(&lab, "h1", "two", &b1));
    let live = lab.wait_consistent_on("h1", &["net1", "net2"]);
    assert!(live.contains(&a1) && !live.contains(&a2), "{live:?}");
    eventually(WAIT, "the second gateway's host route goes", || {
        (!lab.routes("h1").contains("169.254.1.2 dev lo scope link")).then_some(())
    });
    assert!(lab.routes("h1").contains("169.254.1.1 dev lo scope link"));
    lab.sh("h1", "docker rm -f two");
}

#[test]
fn bridge_and_tabby_in_both_orders() {
    let lab = lab();
    lab.sh(
        "h1",
        &format!("docker network create -d bridge --subnet {BRIDGE_SUBNET} {BRIDGE}"),
    );
    let b1 = lab.container_ip("h2", "b1");
    // Bridge first, then tabby.
    run(&lab, "h1", "bridged", BRIDGE);
    lab.sh("h1", "docker network connect net1 bridged");
    // Tabby first, then bridge.
    run(&lab, "h1", "routed", "net1");
    lab.sh("h1", &format!("docker network connect {BRIDGE} routed"));
    // A local peer on net1 alone, which could answer a spoofed packet
    // through the bridge if one got through.
    run(&lab, "h1", "local1", "net1");
    let local1 = lab.container_ip("h1", "local1");

    for (container, tabby_if, bridge_if) in
        [("bridged", "eth1", "eth0"), ("routed", "eth0", "eth1")]
    {
        assert_eq!(
            lab.route_get("h1", container, &b1),
            (tabby_if.to_string(), Some("169.254.1.1".into())),
            "{container}"
        );
        assert!(reaches(&lab, "h1", container, &b1), "{container}");
        assert!(reaches(&lab, "h1", container, &local1), "{container}");
        // Docker's choice of default route: here the bridge, by name.
        let default = lab.sh(
            "h1",
            &format!("docker exec {container} ip route show default"),
        );
        assert!(
            default.contains(&format!("dev {bridge_if}")),
            "{container}: {default}"
        );
    }

    // Policy holds on the tabby side: b1 (net1) reaches `bridged` at its
    // tabby address, b2 (net2) does not.
    let tabby_addr = lab.network_ip("h1", "bridged", "net1");
    assert!(reaches(&lab, "h2", "b1", &tabby_addr));
    assert_eq!(
        lab.unreachable("h2", "b2", [&tabby_addr]),
        vec![tabby_addr.clone()]
    );

    // A packet from the bridge address sent out of the tabby interface
    // does not pass as the tabby address: dropped, while the same ping
    // from the tabby address answers.
    let bridge_addr = lab.network_ip("h1", "bridged", BRIDGE);
    let spoofed = format!("docker exec bridged ping -c1 -W2 -I {bridge_addr} {local1}");
    assert!(reaches(&lab, "h1", "bridged", &local1));
    assert!(!lab.try_sh("h1", &spoofed), "a spoofed source passed");

    lab.sh("h1", "docker rm -f bridged routed local1");
    lab.sh("h1", &format!("docker network rm {BRIDGE}"));
}

const COMPOSE: &str = r#"version: "2.4"
services:
  web:
    image: tabby/busybox
    command: sleep 1d
    networks: [frontend]
  app:
    image: tabby/busybox
    command: sleep 1d
    networks: [frontend, backend]
  db:
    image: tabby/busybox
    command: sleep 1d
    networks: [backend]
networks:
  frontend:
    driver: tabby
    ipam: {driver: tabby, config: [{subnet: 198.18.110.0/24}]}
  backend:
    driver: tabby
    ipam: {driver: tabby, config: [{subnet: 198.18.111.0/24}]}
"#;

#[test]
fn a_compose_file_with_two_tabby_networks() {
    let lab = lab();
    let file = lab.dir().join("docker-compose.yml");
    std::fs::write(&file, COMPOSE).unwrap();
    let compose = format!("docker-compose -p mn -f {}", file.display());
    lab.sh("h2", &format!("{compose} up -d"));
    let ping = |from: &str, to: &str| {
        lab.try_sh("h2", &format!("docker exec mn_{from}_1 ping -c1 -W2 {to}"))
    };
    // Services that share a network reach each other by name...
    for (from, to) in [("web", "app"), ("app", "web"), ("app", "db"), ("db", "app")] {
        eventually(WAIT, &format!("{from} reaches {to}"), || {
            ping(from, to).then_some(())
        });
    }
    // ...and those that share none do not, by name or by address.
    assert!(!ping("web", "db") && !ping("db", "web"));
    let db = lab.container_ip("h2", "mn_db_1");
    let web = lab.container_ip("h2", "mn_web_1");
    assert!(ping("app", &db) && !ping("web", &db));
    assert!(ping("app", &web) && !ping("db", &web));
    lab.wait_consistent_on("h2", &["mn_frontend", "mn_backend", "net1", "net2"]);
    let up: BTreeSet<String> = ["mn_frontend", "mn_backend"]
        .iter()
        .flat_map(|n| lab.live_ips("h2", n))
        .collect();
    assert_eq!(up.len(), 4, "web, db and app's two: {up:?}");

    lab.sh("h2", &format!("{compose} down"));
    // Every endpoint, address and veth route is gone.
    eventually(WAIT, "compose's endpoints released", || {
        let held = lab.allocated_ips("h2");
        let recorded = lab.recorded_ips("h2");
        let routes = lab.routes("h2");
        up.iter()
            .all(|ip| {
                !held.contains(ip)
                    && !recorded.contains(ip)
                    && !routes.iter().any(|r| r.starts_with(&format!("{ip} dev")))
            })
            .then_some(())
    });
}
