//! Dual-stack networks across three hosts (real dockerd, real nftables
//! or iptables and ip6tables: `TABBY_FIREWALL`; scripts/test runs both):
//! every container gets a /32 and a /128, pings cross hosts over IPv6,
//! routes are exact, `--ip6` is honoured and a taken one refused,
//! profiles, anti-spoofing and CIDR rules hold for IPv6 as for IPv4, and
//! published ports answer on the families Docker asked for.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use support::{Lab, eventually, shared_lab};

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];
const POOL6: &str = "2001:2:0:1000::/64";
const A2_IP6: &str = "2001:2:0:1000::a2";

/// The tests change profiles: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn lab() -> (MutexGuard<'static, ()>, Arc<Lab>) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = shared_lab(|| {
        // Drift is looked for every few seconds.
        let lab = Lab::up_with(3, &[("TABBY_RESYNC_INTERVAL", "5")]);
        for host in HOSTS {
            for p in ["A", "B"] {
                let net = p.to_lowercase();
                lab.sh(
                    host,
                    &format!("docker network create -d tabby --ipam-driver tabby --ipv6 --subnet 198.18.64.0/20 --subnet {POOL6} --opt tabby.profile={p} n{net}"),
                );
            }
        }
        lab.sh(
            "h1",
            "docker run -d --name a1 --cap-add NET_ADMIN --net na tabby/busybox sleep 1d",
        );
        lab.sh(
            "h2",
            &format!("docker run -d --name a2 --net na --ip6 {A2_IP6} tabby/busybox sleep 1d"),
        );
        lab.sh(
            "h3",
            "docker run -d --name b3 --net nb tabby/busybox sleep 1d",
        );
        for port in [3306, 3307] {
            lab.sh(
                "h2",
                &format!("docker exec -d a2 nc -ll -p {port} -e echo hello"),
            );
        }
        lab
    });
    (guard, lab)
}

fn ip6(lab: &Lab, host: &str, container: &str) -> String {
    let format = "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}";
    lab.sh(host, &format!("docker inspect -f '{format}' {container}"))
        .trim()
        .to_string()
}

fn pings6(lab: &Lab, host: &str, container: &str, ip: &str) -> bool {
    lab.try_sh(
        host,
        &format!("docker exec {container} ping -6 -c 1 -W 2 {ip}"),
    )
}

/// IPv6 blocks and their owners, from `tabby ipam show -o json`.
fn blocks6(lab: &Lab) -> Vec<(ipnet::Ipv6Net, String)> {
    let ipam: Value = serde_json::from_str(&lab.sh("h1", "tabby ipam show -o json")).unwrap();
    ipam.as_object()
        .unwrap()
        .iter()
        .filter_map(|(cidr, b)| Some((cidr.parse().ok()?, b["affinity"].as_str()?.to_string())))
        .collect()
}

fn host_ip6(host: &str) -> String {
    format!("2001:2::{}", 10 + host[1..].parse::<u8>().unwrap())
}

/// A host's IPv6 routes: blackholes and routes via other hosts, without
/// metrics; and how many go down a veth.
fn routes6(lab: &Lab, host: &str) -> (BTreeSet<String>, usize) {
    let text = lab.sh(host, "ip -6 route show proto 77");
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.split(" metric").next().unwrap().trim().to_string())
        .collect();
    let veths = lines.iter().filter(|l| l.contains(" dev tabby")).count();
    let rest = lines
        .into_iter()
        .filter(|l| !l.contains(" dev tabby"))
        .collect();
    (rest, veths)
}

#[test]
fn containers_get_both_families_and_ping_across_hosts_over_ipv6() {
    let (_serial, lab) = lab();
    let (a1, a2, b3) = (
        ip6(&lab, "h1", "a1"),
        ip6(&lab, "h2", "a2"),
        ip6(&lab, "h3", "b3"),
    );
    assert_eq!(a2, A2_IP6, "--ip6 honoured");
    let pool: ipnet::Ipv6Net = POOL6.parse().unwrap();
    for ip in [&a1, &a2, &b3] {
        assert!(
            pool.contains(&ip.parse::<std::net::Ipv6Addr>().unwrap()),
            "{ip}"
        );
    }
    // The container sees its /128 and the link-local gateway.
    let routes = lab.sh("h1", "docker exec a1 ip -6 route");
    assert!(
        routes.contains("default via fe80::ecee:eeff:feee:eeee dev eth0"),
        "{routes}"
    );
    assert!(pings6(&lab, "h1", "a1", &a2) && pings6(&lab, "h2", "a2", &a1));
    let table = lab.sh("h1", "tabby endpoint show");
    let row = table.lines().find(|l| l.contains(&format!("{a2}/128")));
    assert!(
        row.is_some_and(|r| r.starts_with("| h2 ") && r.contains("/32")),
        "{table}"
    );

    // Exact route sets: the pool and own blocks are blackholes, other
    // hosts' blocks go via their IPv6 address, local /128s down veths.
    let blocks = blocks6(&lab);
    for (host, local) in [("h1", 1), ("h2", 1), ("h3", 1)] {
        let mut want = BTreeSet::from([format!("blackhole {POOL6} dev lo")]);
        for (block, owner) in &blocks {
            want.insert(match owner == host {
                true => format!("blackhole {block} dev lo"),
                false => format!("{block} via {} dev eth0", host_ip6(owner)),
            });
        }
        eventually(
            Duration::from_secs(20),
            &format!("IPv6 routes of {host}: {want:?}"),
            || (routes6(&lab, host) == (want.clone(), local)).then_some(()),
        );
    }

    // A taken --ip6 is refused, naming its holder.
    let taken = lab.run(
        "h3",
        &[
            "docker",
            "run",
            "--rm",
            "--net",
            "nb",
            "--ip6",
            A2_IP6,
            "tabby/busybox",
            "true",
        ],
    );
    assert!(!taken.status.success());
    let err = support::stderr(&taken);
    assert!(
        err.contains("already in use") && err.contains("h2"),
        "{err}"
    );
}

#[test]
fn profiles_anti_spoofing_and_cidr_rules_hold_for_ipv6() {
    let (_serial, lab) = lab();
    let (a2, b3) = (ip6(&lab, "h2", "a2"), ip6(&lab, "h3", "b3"));
    // Across profiles: nothing; within one: ping and TCP.
    assert!(pings6(&lab, "h1", "a1", &a2));
    assert!(lab.connects("h1", "a1", &a2, 3306));
    assert!(!pings6(&lab, "h3", "b3", &a2));
    assert!(!lab.connects("h3", "b3", &a2, 3306));

    // A spoofed IPv6 source dies on its own host; its own still works.
    let before = lab.spoof6_drops("h1");
    lab.sh(
        "h1",
        &format!("docker exec a1 ip -6 addr add {b3}/128 dev eth0"),
    );
    // Usable once duplicate address detection is over.
    eventually(
        Duration::from_secs(10),
        "the borrowed address usable",
        || {
            let addrs = lab.sh("h1", "docker exec a1 ip -6 addr show dev eth0");
            (!addrs.contains("tentative")).then_some(())
        },
    );
    let spoofed = lab.try_sh(
        "h1",
        &format!("docker exec a1 ping -6 -c 3 -W 1 -I {b3} {a2}"),
    );
    lab.sh(
        "h1",
        &format!("docker exec a1 ip -6 addr del {b3}/128 dev eth0"),
    );
    assert!(!spoofed, "a spoofed source got an answer");
    assert!(
        lab.spoof6_drops("h1") >= before + 3,
        "the anti-spoofing rule dropped them"
    );
    assert!(pings6(&lab, "h1", "a1", &a2), "its own address still works");

    // An IPv6 CIDR rule opens exactly its port to exactly that source.
    lab.sh(
        "h1",
        &format!("tabby profile A rule add inbound allow tcp from cidr {b3}/128 to ports 3306"),
    );
    eventually(
        Duration::from_secs(15),
        "b3 to reach a2's 3306 over IPv6",
        || lab.connects("h3", "b3", &a2, 3306).then_some(()),
    );
    assert!(!lab.connects("h3", "b3", &a2, 3307));
    assert!(!pings6(&lab, "h3", "b3", &a2));
    let shown = lab.sh("h1", "tabby profile A rule show");
    let number = shown
        .lines()
        .find(|l| l.contains(&format!("cidr {b3}/128")))
        .and_then(|l| l.trim().trim_start_matches('|').split_whitespace().next())
        .unwrap_or_else(|| panic!("{shown}"))
        .to_string();
    lab.sh(
        "h1",
        &format!("tabby profile A rule remove inbound {number}"),
    );
    eventually(Duration::from_secs(15), "b3 to lose a2's 3306", || {
        (!lab.connects("h3", "b3", &a2, 3306)).then_some(())
    });
    assert!(lab.connects("h1", "a1", &a2, 3306), "A still reaches A");

    // Drift in the IPv6 share is repaired: a2's inbound chain flushed (it
    // would let anything in) and its tag's IPv6 set emptied.
    let id = lab.sh(
        "h2",
        "docker inspect -f '{{.NetworkSettings.Networks.na.EndpointID}}' a2",
    );
    let chain = format!("TABBY-TW-{}", &id.trim()[..12]);
    let before = lab.fw_chain6("h2", &chain);
    lab.fw_flush_chain6("h2", &chain);
    lab.fw_flush_set("h2", "tabby-6-A");
    let a1 = ip6(&lab, "h1", "a1");
    eventually(Duration::from_secs(30), "the IPv6 share repaired", || {
        let set = lab.fw_set("h2", "tabby-6-A");
        (lab.fw_chain6("h2", &chain) == before && set.contains(&a1)).then_some(())
    });
    assert!(lab.connects("h1", "a1", &a2, 3306));
    assert!(!lab.connects("h3", "b3", &a2, 3306));
}

#[test]
fn removed_containers_and_restarts_leave_no_ipv6_behind() {
    let (_serial, lab) = lab();
    lab.sh(
        "h1",
        "docker run -d --name t1 --net na tabby/busybox sleep 1d",
    );
    let t1 = ip6(&lab, "h1", "t1");
    let held = lab.sh("h1", &format!("tabby ipam show --ip {t1}"));
    assert!(held.contains("allocated") && held.contains("t1"), "{held}");
    lab.sh("h1", "docker rm -f t1");
    eventually(Duration::from_secs(20), "t1's IPv6 address free", || {
        lab.sh("h1", &format!("tabby ipam show --ip {t1}"))
            .contains("free")
            .then_some(())
    });
    // An agent restart keeps a2's /128 and its reachability.
    let a2 = ip6(&lab, "h2", "a2");
    lab.stop("h2", "agent");
    lab.start("h2", "agent");
    eventually(
        Duration::from_secs(20),
        "a2 reachable after h2's restart",
        || pings6(&lab, "h1", "a1", &a2).then_some(()),
    );
    assert!(
        lab.sh("h2", "ip -6 route show proto 77")
            .contains(&format!("{a2} dev tabby"))
    );
    // Docker 20.10 keeps the IPv4 address of a container whose IPv6
    // request was refused (the first test's taken --ip6): the check frees
    // it, after which every host agrees with Docker in both families.
    for host in HOSTS {
        lab.sh(
            host,
            &format!("tabby ipam check --host {host} --grace 0 --repair"),
        );
        let report = lab.sh(host, &format!("tabby ipam check --host {host} --grace 0"));
        assert!(report.contains("agree with Docker"), "{host}: {report}");
    }
}

#[test]
fn published_ports_answer_on_each_family_docker_asks_for() {
    let (_serial, lab) = lab();
    let (v4, v6) = ("198.18.0.11", host_ip6("h1"));
    let wait = Duration::from_secs(15);
    let serve = |name: &str, publish: &str| {
        lab.sh(
            "h1",
            &format!("docker run -d --name {name} {publish} --net na tabby/busybox nc -ll -p 3306 -e echo {name}"),
        );
    };
    let reads = |ip: &str, port: u16, want: &str| {
        eventually(wait, &format!("{want} on [{ip}]:{port}"), || {
            (lab.client_reads(ip, port).as_deref() == Some(want)).then_some(())
        })
    };
    // -p PORT: every address of both families, the host's own included.
    serve("p1", "-p 8080:3306");
    reads(&v6, 8080, "p1");
    reads(v4, 8080, "p1");
    assert_eq!(lab.host_reads("h1", &v6, 8080).as_deref(), Some("p1"));
    // -p [::]:PORT: IPv6 only; the same port on IPv4 stays closed while
    // p1's answers beside it.
    serve("p2", "-p [::]:8081:3306");
    reads(&v6, 8081, "p2");
    assert_eq!(lab.client_reads(v4, 8081), None, "IPv6 only");
    assert_eq!(lab.client_reads(v4, 8080).as_deref(), Some("p1"));
    // An IPv6 host address: that address only.
    lab.sh(
        "h1",
        &format!("tabby expose add 3306 --to p1 --host-port 8082 --host-ip {v6}"),
    );
    reads(&v6, 8082, "p1");
    assert_eq!(lab.client_reads(v4, 8082), None, "that address only");
    // `expose show` names the host address and both addresses reached.
    let shown = lab.sh("h1", "tabby expose show");
    let p1 = format!(
        "{}, {}",
        lab.container_ip("h1", "p1"),
        ip6(&lab, "h1", "p1")
    );
    assert!(shown.contains(&v6) && shown.contains(&p1), "{shown}");
    // ::1 cannot be forwarded to a container: refused, nothing recorded.
    let refused = lab.run(
        "h1",
        &[
            "sh",
            "-c",
            "docker run -d --name p3 -p '[::1]:8083:3306' --net na tabby/busybox sleep 1d",
        ],
    );
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("IPv6 loopback"), "{why}");
    // Gone with their containers (and the exposure by hand), in both
    // families.
    lab.sh(
        "h1",
        &format!("tabby expose remove 8082 --to p1 --host-ip {v6} && docker rm -f p1 p2"),
    );
    lab.sh("h1", "docker rm -f p3 2>/dev/null || true");
    eventually(wait, "the published ports to close", || {
        let closed = [(v4, 8080), (v6.as_str(), 8080), (v6.as_str(), 8081)]
            .iter()
            .all(|(ip, port)| lab.client_reads(ip, *port).is_none());
        closed.then_some(())
    });
    assert_eq!(lab.fw_dnat_entries("h1"), 0);
}
