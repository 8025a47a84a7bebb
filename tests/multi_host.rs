//! Three Docker hosts, one tabby network, Calico-style routing without
//! encapsulation: the seed scenario's layout, exact routing tables,
//! convergence after removals, node loss and agent restarts.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;
use support::{Lab, eventually};

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

fn host_ip(host: &str) -> String {
    format!("198.18.0.1{}", &host[1..])
}

fn run(lab: &Lab, host: &str, name: &str, ip: Option<&str>) -> String {
    let ip_arg = ip.map(|ip| format!("--ip {ip} ")).unwrap_or_default();
    lab.sh(
        host,
        &format!("docker run -d --name {name} --net mysql-net {ip_arg}tabby/busybox sleep 3600"),
    );
    lab.container_ip(host, name)
}

/// The routes each host must have, derived from what the datastore says
/// (blocks and their owners) and where the containers are.
fn expected_routes(
    lab: &Lab,
    containers: &HashMap<String, (String, String)>,
) -> HashMap<&'static str, BTreeSet<String>> {
    let ipam: Value = serde_json::from_str(&lab.sh("h1", "tabby ipam show -o json")).unwrap();
    let blocks: Vec<(String, String)> = ipam
        .as_object()
        .unwrap()
        .iter()
        .map(|(cidr, b)| (cidr.clone(), b["affinity"].as_str().unwrap().to_string()))
        .collect();
    let block_of = |ip: &str| {
        blocks
            .iter()
            .find(|(cidr, _)| {
                let net: ipnet::Ipv4Net = cidr.parse().unwrap();
                net.contains(&ip.parse::<std::net::Ipv4Addr>().unwrap())
            })
            .map(|(_, owner)| owner.clone())
            .unwrap()
    };
    let mut out = HashMap::new();
    for host in HOSTS {
        let mut routes: BTreeSet<String> = [
            "169.254.1.1 dev lo scope link".into(),
            "blackhole 192.168.0.0/16".into(),
        ]
        .into();
        for (cidr, owner) in &blocks {
            let cidr = cidr.trim_end_matches("/32");
            routes.insert(if owner == host {
                format!("blackhole {cidr}")
            } else {
                format!("{cidr} via {} dev eth0", host_ip(owner))
            });
        }
        for (ip, (on, _veth)) in containers {
            if on == host {
                continue;
            }
            if block_of(ip) != *on {
                routes.insert(format!("{ip} via {} dev eth0", host_ip(on)));
            }
        }
        out.insert(host, routes);
    }
    out
}

fn host_veth_routes_match(lab: &Lab, host: &str, expected: &BTreeSet<String>, local: &[&String]) {
    let actual = lab.routes(host);
    let mut want = expected.clone();
    for ip in local {
        let line = actual
            .iter()
            .find(|l| l.starts_with(&format!("{ip} dev tabby")))
            .unwrap_or_else(|| panic!("{host} has no veth route for {ip}: {actual:?}"));
        want.insert(line.clone());
    }
    assert_eq!(actual, want, "routes on {host}");
}

/// Each agent found the lab's IPv6 address beside its IPv4 one, and the
/// hosts reach each other over it.
fn nodes_record_their_ipv6_addresses(lab: &Lab) {
    let nodes: Vec<Value> = serde_json::from_str(&lab.sh("h1", "tabby node show -o json")).unwrap();
    for (i, host) in HOSTS.iter().enumerate() {
        let ip6 = format!("2001:2::{}", 11 + i);
        let node = nodes.iter().find(|n| n["hostname"] == *host).unwrap();
        assert_eq!(node["ip6"], ip6.as_str(), "{node}");
        let other = HOSTS[(i + 1) % HOSTS.len()];
        assert!(
            lab.try_sh(other, &format!("busybox ping -6 -c 1 -W 2 {ip6}")),
            "{other} to {ip6}"
        );
    }
    let table = lab.sh("h1", "tabby node show");
    assert!(
        table.contains("IPV6") && table.contains("2001:2::12"),
        "{table}"
    );
}

/// The IPv6 routes of a host, as `ip -6 route show proto 77` lines
/// without their metric and preference.
fn ipv6_routes(lab: &Lab, host: &str) -> BTreeSet<String> {
    lab.sh(host, "ip -6 route show proto 77")
        .lines()
        .map(|l| l.split(" metric").next().unwrap().trim().to_string())
        .collect()
}

/// IPv6 blocks are routed like IPv4 ones: each host claims one through
/// Docker's IPAM call, and every other host routes it via that host's
/// IPv6 address; pool and own blocks are blackholes. Released and
/// removed, the pool leaves no route behind.
fn ipv6_blocks_route_between_hosts(lab: &Lab) {
    const POOL6: &str = "2001:2:0:1000::/56";
    lab.sh("h1", &format!("tabby pool add {POOL6}"));
    let mut blocks = Vec::new();
    for host in HOSTS {
        let body = serde_json::json!({"PoolID": POOL6, "Address": ""});
        let got = support::http::post_ok(&lab.socket(host), "/IpamDriver.RequestAddress", &body);
        let address = got["Address"].as_str().unwrap().to_string();
        let ip: std::net::IpAddr = address.trim_end_matches("/128").parse().unwrap();
        let block = ipnet::IpNet::new(ip, 122).unwrap().trunc();
        blocks.push((host, address, block));
    }
    for (i, host) in HOSTS.iter().enumerate() {
        let mut expected = BTreeSet::from([format!("blackhole {POOL6} dev lo")]);
        for (j, (_, _, block)) in blocks.iter().enumerate() {
            expected.insert(match i == j {
                true => format!("blackhole {block} dev lo"),
                false => format!("{block} via 2001:2::{} dev eth0", 11 + j),
            });
        }
        eventually(Duration::from_secs(20), "IPv6 routes", || {
            (ipv6_routes(lab, host) == expected).then_some(())
        });
    }
    for (host, address, _) in &blocks {
        let body = serde_json::json!({"PoolID": POOL6, "Address": address});
        support::http::post_ok(&lab.socket(host), "/IpamDriver.ReleaseAddress", &body);
    }
    lab.sh("h1", &format!("tabby pool remove {POOL6}"));
    for host in HOSTS {
        eventually(Duration::from_secs(20), "no IPv6 routes", || {
            ipv6_routes(lab, host).is_empty().then_some(())
        });
    }
}

#[test]
fn seed_layout_routes_pings_and_convergence() {
    let lab = Lab::up(3);
    let created = lab.sh(
        "h1",
        "tabby network create mysql-net --subnet 192.168.0.0/16 --profile mysql-replication",
    );
    assert!(!created.contains("Not yet"), "{created}");
    let shown = lab.sh("h2", "tabby network show");
    assert!(shown.contains("| yes | yes | yes |"), "{shown}");
    nodes_record_their_ipv6_addresses(&lab);
    ipv6_blocks_route_between_hosts(&lab);

    // The article's addresses, all in one /26: .51 and .52 are borrowed.
    let mut containers: HashMap<String, (String, String)> = HashMap::new();
    for (i, host) in HOSTS.iter().enumerate() {
        let ip = run(
            &lab,
            host,
            &format!("mysql{i}"),
            Some(&format!("192.168.0.5{i}")),
        );
        containers.insert(ip, (host.to_string(), format!("mysql{i}")));
        let ip = run(&lab, host, &format!("auto{i}"), None);
        containers.insert(ip, (host.to_string(), format!("auto{i}")));
    }
    assert_eq!(containers.len(), 6, "addresses are distinct");

    // Every container reaches every other.
    for (from_ip, (host, name)) in &containers {
        let others = containers.keys().filter(|ip| *ip != from_ip);
        let failed = lab.unreachable(host, name, others);
        assert!(
            failed.is_empty(),
            "{name} on {host} cannot reach {failed:?}"
        );
    }

    // Routing tables are exactly: blocks via their owner, borrowed /32s via
    // their holder, blackholes for the pool and own blocks, local veths.
    let expected = expected_routes(&lab, &containers);
    for host in HOSTS {
        let local: Vec<&String> = containers
            .iter()
            .filter(|(_, (h, _))| h == host)
            .map(|(ip, _)| ip)
            .collect();
        eventually(Duration::from_secs(5), &format!("{host}'s routes"), || {
            let actual = lab.routes(host);
            (actual.len() == expected[host].len() + local.len()).then_some(())
        });
        host_veth_routes_match(&lab, host, &expected[host], &local);
    }
    let table = lab.sh("h3", "tabby endpoint show --detailed");
    for (i, host) in HOSTS.iter().enumerate() {
        assert!(
            table
                .lines()
                .any(|l| l.contains(&format!("192.168.0.5{i}/32"))
                    && l.starts_with(&format!("| {host} "))),
            "{table}"
        );
    }

    // A container removed on h2: its borrowed /32 goes from h1 and h3.
    lab.sh("h2", "docker rm -f mysql1");
    for host in ["h1", "h3"] {
        eventually(
            Duration::from_secs(2),
            "the /32 of a removed container to go",
            || {
                (!lab
                    .routes(host)
                    .iter()
                    .any(|r| r.starts_with("192.168.0.51 ")))
                .then_some(())
            },
        );
    }

    // h3's agent stops and its lease expires: routes towards h3 go.
    let h1_log_before = lab.agent_log("h1").len();
    let via_h3 = |lab: &Lab, host: &str| {
        lab.routes(host)
            .iter()
            .filter(|r| r.contains("via 198.18.0.13"))
            .count()
    };
    assert!(via_h3(&lab, "h1") > 0);
    lab.stop("h3", "agent");
    for host in ["h1", "h2"] {
        eventually(
            Duration::from_secs(15),
            "routes towards a dead node to go",
            || (via_h3(&lab, host) == 0).then_some(()),
        );
    }
    assert!(
        lab.sh("h1", "tabby node show")
            .lines()
            .any(|l| l.starts_with("| h3") && l.contains("down"))
    );
    // The blackhole catches h3's addresses meanwhile.
    assert!(!lab.pings("h1", "mysql0", "192.168.0.52"));

    lab.start("h3", "agent");
    for host in ["h1", "h2"] {
        eventually(
            Duration::from_secs(10),
            "routes towards a returning node",
            || (via_h3(&lab, host) > 0).then_some(()),
        );
    }
    assert!(lab.pings("h1", "mysql0", "192.168.0.52"));
    // No flap: h1 only ever touched routes towards h3.
    let log = &lab.agent_log("h1")[h1_log_before..];
    for line in log
        .lines()
        .filter(|l| l.contains("installed route") || l.contains("removed route"))
    {
        assert!(
            line.contains("via 198.18.0.13"),
            "unrelated route touched: {line}"
        );
    }
}

#[test]
fn ninety_containers_started_at_once_on_three_hosts() {
    let lab = Lab::up(3);
    lab.sh(
        "h1",
        "tabby network create mysql-net --subnet 198.18.64.0/20",
    );
    std::thread::scope(|scope| {
        for host in HOSTS {
            let lab = &lab;
            scope.spawn(move || {
                lab.sh(
                    host,
                    "for i in $(seq 1 30); do docker run -d --net mysql-net tabby/busybox sleep 3600 >/dev/null & done; wait",
                );
            });
        }
    });
    let mut all = Vec::new();
    for host in HOSTS {
        let ips = lab.sh(
            host,
            "docker ps -q | xargs docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'",
        );
        let ips: Vec<String> = ips.lines().map(str::to_string).collect();
        assert_eq!(ips.len(), 30, "{host} runs 30 containers");
        all.extend(ips);
    }
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), 90, "90 distinct addresses");
    // All reachable from one container on h1 and one on h3.
    for host in ["h1", "h3"] {
        let probe = lab.sh(host, "docker ps -q | head -1").trim().to_string();
        let failed = lab.unreachable(host, &probe, &all);
        assert!(failed.is_empty(), "unreachable from {host}: {failed:?}");
    }
}
