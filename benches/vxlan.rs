//! `cargo bench --bench vxlan` (or `scripts/bench vxlan`): TCP between two
//! containers on different segments, across the tor, in one run:
//! - tabby with `--vxlan cross-subnet` through a plain tor;
//! - Docker's own overlay (a swarm of the same two dockerds, data path on
//!   UDP 4790 so it runs beside tabby's tunnel on 4789);
//! - tabby routed through a BGP tor (a second lab, no encapsulation);
//! - host to host, in each lab;
//! - the ceilings: in each lab, two plain namespaces routed through the
//!   hosts like containers, with no per-endpoint policy and no Docker inside.
//!
//! Throughput on this machine swings about 2x between runs: every round
//! measures each path once, the order rotating round by round, and each
//! path's median and spread are printed. `TABBY_BENCH_ROUNDS` (default 5)
//! and `TABBY_BENCH_SECS` (default 10) set the rounds and their length.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{Lab, eventually};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Where one end of a path runs iperf3.
enum End {
    Host(&'static str),
    Container(&'static str, &'static str),
    Bare(PathBuf),
}

impl End {
    fn sh(&self, lab: &Lab, command: &str) -> String {
        match self {
            End::Host(host) => lab.sh(host, command),
            End::Container(host, c) => lab.sh(
                host,
                &format!("nsenter -t $(docker inspect -f '{{{{.State.Pid}}}}' {c}) -n {command}"),
            ),
            End::Bare(ns) => in_netns(ns, command),
        }
    }
}

/// One path: a lab, its client and server ends, and the server's address.
struct Path<'a> {
    name: &'static str,
    lab: &'a Lab,
    client: End,
    server: End,
    target: String,
}

/// iperf3 TCP for `secs` seconds, in Gbit/s; each end runs the host's
/// iperf3 in the end's network namespace.
fn gbps(path: &Path, secs: u64) -> f64 {
    path.server.sh(path.lab, "iperf3 -s -1 -D");
    std::thread::sleep(Duration::from_millis(300));
    let json = path
        .client
        .sh(path.lab, &format!("iperf3 -c {} -t {secs} -J", path.target));
    let v: serde_json::Value = serde_json::from_str(&json).expect("iperf3 JSON");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("bits_per_second")
        / 1e9
}

fn containers(lab: &Lab, net: &str, names: [&str; 2]) -> String {
    lab.sh(
        "h1",
        &format!(
            "docker run -d --name {} --net {net} tabby/busybox sleep 1d",
            names[0]
        ),
    );
    lab.sh(
        "h2",
        &format!(
            "docker run -d --name {} --net {net} tabby/busybox sleep 1d",
            names[1]
        ),
    );
    let ip = lab
        .sh(
            "h2",
            &format!(
                "docker inspect -f '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}}{{{{end}}}}' {}",
                names[1]
            ),
        )
        .trim()
        .to_string();
    eventually(
        Duration::from_secs(60),
        "the pair reaching each other",
        || lab.pings("h1", names[0], &ip).then_some(()),
    );
    ip
}

/// The plain-tor lab: tabby's tunnel and Docker's overlay side by side.
fn plain_lab() -> Lab {
    let lab = Lab::up_with(2, &[("TABBY_LAB_SEGMENTS", "2")]);
    lab.sh("h1", "tabby pool add 198.19.32.0/20 --vxlan cross-subnet");
    lab.sh("h1", "tabby network create vx --subnet 198.19.32.0/20");
    lab.sh(
        "h1",
        "docker swarm init --advertise-addr 198.18.0.11 --data-path-port 4790 \
         --default-addr-pool 198.19.224.0/20 >/dev/null",
    );
    let token = lab.sh("h1", "docker swarm join-token -q worker");
    lab.sh(
        "h2",
        &format!(
            "docker swarm join --token {} --advertise-addr 198.18.1.12 198.18.0.11:2377",
            token.trim()
        ),
    );
    lab.sh(
        "h1",
        "docker network create -d overlay --attachable --subnet 198.19.240.0/24 ov",
    );
    lab
}

fn bgp_lab() -> Lab {
    let lab = Lab::up_with(
        2,
        &[
            ("TABBY_LAB_ROUTING", "bgp"),
            ("TABBY_LAB_SEGMENTS", "2"),
            ("TABBY_LAB_TOR_BGP", "1"),
        ],
    );
    lab.sh("h1", "tabby bgp mesh off");
    for (host, tor) in [("h1", "198.18.0.1"), ("h2", "198.18.1.1")] {
        lab.sh(
            "h1",
            &format!("tabby bgp peer add {tor} --as 64513 --node {host}"),
        );
    }
    lab.sh("h1", "tabby network create n1 --subnet 198.19.48.0/20");
    lab
}

fn main() {
    let (rounds, secs) = (env("TABBY_BENCH_ROUNDS", 5), env("TABBY_BENCH_SECS", 10));
    let plain = plain_lab();
    let bgp = bgp_lab();
    let bare = Bare::attach(&bgp, Via::Tor);
    let bare_tunnel = Bare::attach(&plain, Via::Tunnel);
    let paths = [
        Path {
            name: "host h1 -> h2, plain tor",
            lab: &plain,
            client: End::Host("h1"),
            server: End::Host("h2"),
            target: "198.18.1.12".into(),
        },
        Path {
            name: "tabby VXLAN cross-subnet",
            lab: &plain,
            client: End::Container("h1", "t1"),
            server: End::Container("h2", "t2"),
            target: containers(&plain, "vx", ["t1", "t2"]),
        },
        Path {
            name: "Docker overlay",
            lab: &plain,
            client: End::Container("h1", "o1"),
            server: End::Container("h2", "o2"),
            target: containers(&plain, "ov", ["o1", "o2"]),
        },
        Path {
            name: "ceiling: plain netns, VXLAN",
            lab: &plain,
            client: End::Bare(bare_tunnel.namespaces[0].clone()),
            server: End::Bare(bare_tunnel.namespaces[1].clone()),
            target: "198.19.65.2".into(),
        },
        Path {
            name: "host h1 -> h2, BGP tor",
            lab: &bgp,
            client: End::Host("h1"),
            server: End::Host("h2"),
            target: "198.18.1.12".into(),
        },
        Path {
            name: "tabby routed, BGP tor",
            lab: &bgp,
            client: End::Container("h1", "r1"),
            server: End::Container("h2", "r2"),
            target: containers(&bgp, "n1", ["r1", "r2"]),
        },
        Path {
            name: "ceiling: plain netns, BGP",
            lab: &bgp,
            client: End::Bare(bare.namespaces[0].clone()),
            server: End::Bare(bare.namespaces[1].clone()),
            target: "198.19.64.2".into(),
        },
    ];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for round in 0..rounds as usize {
        for i in 0..paths.len() {
            let k = (i + round) % paths.len();
            results[k].push(gbps(&paths[k], secs));
        }
    }
    let medians: Vec<f64> = results.iter().map(|r| median(r.clone())).collect();
    for (path, (all, m)) in paths.iter().zip(results.iter().zip(&medians)) {
        let (lo, hi) = all
            .iter()
            .fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        println!(
            "[vxlan] {:<26} median {m:6.2} Gbit/s, spread {lo:.2}-{hi:.2} over {rounds} x {secs} s",
            path.name
        );
    }
    let [
        host_plain,
        vxlan,
        overlay,
        ceiling_vxlan,
        host_bgp,
        routed,
        ceiling,
    ] = medians[..]
    else {
        unreachable!()
    };
    println!(
        "[vxlan] routed / host (BGP lab) {:.3} (target >= 0.95); routed / overlay {:.3} (>= 1.2); \
         VXLAN / overlay {:.3} (>= 1.0); VXLAN / host (plain lab) {:.3}",
        routed / host_bgp,
        routed / overlay,
        vxlan / overlay,
        vxlan / host_plain
    );
    println!(
        "[vxlan] ceilings: routed {:.3} x host, {:.3} x overlay; VXLAN {:.3} x overlay. \
         tabby / ceiling: routed {:.3}, VXLAN {:.3}",
        ceiling / host_bgp,
        ceiling / overlay,
        ceiling_vxlan / overlay,
        routed / ceiling,
        vxlan / ceiling_vxlan
    );
}

/// A plain network namespace per lab host, routed like a container but made
/// by neither tabby nor Docker: no per-endpoint policy, no embedded-DNS NAT
/// inside it. Only the host's own stateful FORWARD path remains, so its
/// throughput is the ceiling any stateful-firewall dataplane reaches here.
/// Its namespaces go when it drops, before the lab does.
struct Bare {
    namespaces: Vec<PathBuf>,
}

/// How the two plain namespaces reach each other.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// The tor routes 198.19.64.N/32 (the BGP lab's tor is a router).
    Tor,
    /// Through tabby's tunnel, as the agent routes a block across subnets.
    Tunnel,
}

impl Bare {
    /// `bareN` hangs off hN with 198.19.64.N/32 (Tor) or 198.19.65.N/32
    /// (Tunnel), outside the labs' pools.
    fn attach(lab: &Lab, via: Via) -> Bare {
        let mut bare = Bare {
            namespaces: Vec::new(),
        };
        let hosts = [
            ("h1", "198.18.0.11", "198.18.0.1"),
            ("h2", "198.18.1.12", "198.18.1.1"),
        ];
        let (net, mtu) = match via {
            Via::Tor => ("198.19.64", 1500),
            Via::Tunnel => ("198.19.65", 1450),
        };
        for (n, (host, host_ip, _)) in hosts.iter().enumerate() {
            let ns = lab.netns_path(&format!("bare{}", n + 1));
            let name = ns.file_name().unwrap().to_string_lossy().to_string();
            run(&format!("ip netns add {name}"));
            bare.namespaces.push(ns.clone());
            let ip = format!("{net}.{}", n + 1);
            // From this mount namespace: a lab host's own cannot see /run/netns.
            let host_ns = lab.netns_path(host);
            in_netns(
                &ns,
                &format!(
                    "ip link add eth0 mtu {mtu} type veth peer name bare netns {}",
                    host_ns.file_name().unwrap().to_string_lossy()
                ),
            );
            lab.sh(
                host,
                &format!(
                    "sysctl -qw net.ipv4.conf.bare.proxy_arp=1 net.ipv4.neigh.bare.proxy_delay=0 && \
                     ip link set bare mtu {mtu} up && ip route add {ip}/32 dev bare && \
                     iptables -I FORWARD -i bare -j ACCEPT && iptables -I FORWARD -o bare -j ACCEPT"
                ),
            );
            in_netns(
                &ns,
                &format!(
                    "ip link set lo up && ip link set eth0 up && ip addr add {ip}/32 dev eth0 && \
                     ip route add 169.254.1.1 dev eth0 && \
                     ip route add {net}.0/24 via 169.254.1.1 dev eth0"
                ),
            );
            let (other, _, other_gw) = hosts[1 - n];
            if via == Via::Tor {
                lab.sh("tor", &format!("ip route add {ip}/32 via {host_ip}"));
                lab.sh(other, &format!("ip route add {ip}/32 via {other_gw}"));
            } else {
                lab.sh(
                    other,
                    &format!("ip route add {ip}/32 via {host_ip} dev tabby.vxlan onlink"),
                );
            }
        }
        bare
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let name = ns.file_name().unwrap().to_string_lossy().to_string();
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

fn run(command: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", command])
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "`{command}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn in_netns(ns: &std::path::Path, command: &str) -> String {
    run(&format!("nsenter --net={} sh -c '{command}'", ns.display()))
}
