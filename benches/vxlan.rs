//! `cargo bench --bench vxlan` (or `scripts/bench vxlan`): TCP between two
//! containers on different segments, across the tor, in one run:
//! - tabby with `--vxlan cross-subnet` through a plain tor;
//! - Docker's own overlay (a swarm of the same two dockerds, data path on
//!   UDP 4790 so it runs beside tabby's tunnel on 4789);
//! - tabby routed through a BGP tor (a second lab, no encapsulation);
//! - host to host, in each lab.
//!
//! Throughput on this machine swings about 2x between runs: every round
//! measures each path once, the order rotating round by round, and each
//! path's median and spread are printed. `TABBY_BENCH_ROUNDS` (default 5)
//! and `TABBY_BENCH_SECS` (default 10) set the rounds and their length.

#[path = "../tests/support/mod.rs"]
mod support;

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

/// One path: a lab, and client and server as (host, container or None).
struct Path<'a> {
    name: &'static str,
    lab: &'a Lab,
    client: (&'static str, Option<&'static str>),
    server: (&'static str, Option<&'static str>),
    target: String,
}

/// iperf3 TCP for `secs` seconds, in Gbit/s; each end runs the host's
/// iperf3 in the container's network namespace.
fn gbps(path: &Path, secs: u64) -> f64 {
    let prefix = |c: Option<&str>| match c {
        Some(c) => format!("nsenter -t $(docker inspect -f '{{{{.State.Pid}}}}' {c}) -n "),
        None => String::new(),
    };
    let lab = path.lab;
    lab.sh(
        path.server.0,
        &format!("{}iperf3 -s -1 -D", prefix(path.server.1)),
    );
    std::thread::sleep(Duration::from_millis(300));
    let json = lab.sh(
        path.client.0,
        &format!(
            "{}iperf3 -c {} -t {secs} -J",
            prefix(path.client.1),
            path.target
        ),
    );
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
    let paths = [
        Path {
            name: "host h1 -> h2, plain tor",
            lab: &plain,
            client: ("h1", None),
            server: ("h2", None),
            target: "198.18.1.12".into(),
        },
        Path {
            name: "tabby VXLAN cross-subnet",
            lab: &plain,
            client: ("h1", Some("t1")),
            server: ("h2", Some("t2")),
            target: containers(&plain, "vx", ["t1", "t2"]),
        },
        Path {
            name: "Docker overlay",
            lab: &plain,
            client: ("h1", Some("o1")),
            server: ("h2", Some("o2")),
            target: containers(&plain, "ov", ["o1", "o2"]),
        },
        Path {
            name: "host h1 -> h2, BGP tor",
            lab: &bgp,
            client: ("h1", None),
            server: ("h2", None),
            target: "198.18.1.12".into(),
        },
        Path {
            name: "tabby routed, BGP tor",
            lab: &bgp,
            client: ("h1", Some("r1")),
            server: ("h2", Some("r2")),
            target: containers(&bgp, "n1", ["r1", "r2"]),
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
    let [host_plain, vxlan, overlay, host_bgp, routed] = medians[..] else {
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
}
