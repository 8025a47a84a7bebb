//! `cargo bench --bench routing` (or `scripts/bench routing`), on three
//! labs in turn: direct routing (3 hosts, one segment), BGP full mesh (3
//! hosts, one segment) and BGP through the tor (4 hosts on two segments,
//! each peering with the tor, mesh off). Each measures:
//! - route convergence: from `docker run` returning on h1 until the
//!   container's /32 is in the routing table of the measuring host (h2:
//!   same segment, or the other segment through the tor), 50 containers
//!   each holding an address of another host's block;
//! - TCP throughput (iperf3) container h1 -> container h2 against host h1
//!   -> host h2 in the same run (no encapsulation: should be equal);
//! - RSS of agent and BIRD with 100 endpoints per host (single segment).

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Lab, eventually};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[(((p / 100.0) * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
}

/// 0 without a pidfile: no BIRD runs in direct mode.
fn pidfile_rss_mb(pidfile: &std::path::Path) -> f64 {
    std::fs::read_to_string(pidfile).map_or(0.0, |pid| support::procfs::rss_mb(pid.trim()))
}

fn host_ip(lab: &Lab, host: &str) -> String {
    let out = lab.sh(host, "ip -4 -o addr show dev eth0");
    let cidr = out.split_whitespace().nth(3).unwrap();
    cidr.split('/').next().unwrap().to_string()
}

/// `TABBY_BENCH_LABS=direct,mesh,tor` (the default: all) picks the labs.
fn wanted(lab: &str) -> bool {
    std::env::var("TABBY_BENCH_LABS").map_or(true, |v| v.split(',').any(|l| l == lab))
}

fn main() {
    if wanted("direct") {
        bench_direct();
    }
    if wanted("mesh") {
        bench_mesh();
    }
    if wanted("tor") {
        bench_tor();
    }
}

fn bench_direct() {
    let direct = Lab::up(3);
    direct.sh("h1", "tabby network create n1 --subnet 198.18.64.0/20");
    throughput(&direct, "direct, one segment");
    convergence(&direct, "direct, one segment", "h3");
    memory(&direct, "direct");
}

fn bench_mesh() {
    let mesh = Lab::up_with(3, &[("TABBY_LAB_ROUTING", "bgp")]);
    mesh.sh("h1", "tabby network create n1 --subnet 198.18.64.0/20");
    wait_sessions(&mesh, &["h1", "h2", "h3"]);
    convergence(&mesh, "BGP mesh, one segment", "h3");
    if std::env::var_os("TABBY_BENCH_NO_MEMORY").is_none() {
        memory(&mesh, "BGP mesh");
    }
}

/// Measures start once every configured session is up, as in a running
/// cluster: a route announced before a session exists waits for it.
fn wait_sessions(lab: &Lab, hosts: &[&str]) {
    for host in hosts {
        eventually(Duration::from_secs(60), "BGP sessions established", || {
            let out = lab.sh(host, "tabby bgp status -o json");
            let sessions: Vec<serde_json::Value> = serde_json::from_str(&out).ok()?;
            (!sessions.is_empty()
                && sessions.iter().all(|s| {
                    s["info"]
                        .as_str()
                        .is_some_and(|i| i.starts_with("Established"))
                }))
            .then_some(())
        });
    }
}

fn bench_tor() {
    let tor = Lab::up_with(
        4,
        &[
            ("TABBY_LAB_ROUTING", "bgp"),
            ("TABBY_LAB_SEGMENTS", "2"),
            ("TABBY_LAB_TOR_BGP", "1"),
        ],
    );
    tor.sh("h1", "tabby bgp mesh off");
    for (host, tor_ip) in [
        ("h1", "198.18.0.1"),
        ("h2", "198.18.1.1"),
        ("h3", "198.18.0.1"),
        ("h4", "198.18.1.1"),
    ] {
        tor.sh(
            "h1",
            &format!("tabby bgp peer add {tor_ip} --as 64513 --node {host}"),
        );
    }
    tor.sh("h1", "tabby network create n1 --subnet 198.18.64.0/20");
    wait_sessions(&tor, &["h1", "h2", "h3", "h4"]);
    throughput(&tor, "BGP through the tor, across segments");
    // h3 is on h1's segment; h2, where the routes are awaited, is not.
    convergence(&tor, "BGP through the tor, across segments", "h3");
}

/// iperf3 container h1 -> container h2 against host h1 -> host h2,
/// alternated.
fn throughput(lab: &Lab, what: &str) {
    lab.sh(
        "h1",
        "docker run -d --name c1 --net n1 tabby/busybox sleep 1d",
    );
    lab.sh(
        "h2",
        "docker run -d --name c2 --net n1 tabby/busybox sleep 1d",
    );
    let c2 = lab.container_ip("h2", "c2");
    eventually(Duration::from_secs(30), "c1 reaching c2", || {
        lab.pings("h1", "c1", &c2).then_some(())
    });
    let h2 = host_ip(lab, "h2");
    let (mut host, mut container) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        host.push(lab.iperf_gbps(("h1", None), ("h2", None), &h2));
        container.push(lab.iperf_gbps(("h1", Some("c1")), ("h2", Some("c2")), &c2));
    }
    let (hm, cm) = (median(host.clone()), median(container.clone()));
    println!(
        "[{what}] iperf3 TCP, 3 x 4 s each, alternated: host h1->h2 median {hm:.2} Gbit/s {host:.2?}"
    );
    println!(
        "[{what}]   container h1->h2 median {cm:.2} Gbit/s {container:.2?}; ratio container/host {:.3}",
        cm / hm
    );
}

/// `block_host` claims a block; h1's containers take addresses of it, so
/// each needs a /32 of its own on h2.
fn convergence(lab: &Lab, what: &str, block_host: &str) {
    lab.sh(
        block_host,
        "docker run -d --name claim --net n1 --ip 198.18.72.1 tabby/busybox sleep 1d",
    );
    let mut monitor = lab
        .command(&["exec", "h2", "ip", "monitor", "route"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let seen: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let reader = BufReader::new(monitor.stdout.take().unwrap());
    let sink = seen.clone();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            sink.lock().unwrap().push((Instant::now(), line));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let (mut delays, mut from_start, mut run_times) = (Vec::new(), Vec::new(), Vec::new());
    for i in 2..52 {
        let ip = format!("198.18.72.{i}");
        let started = Instant::now();
        lab.sh(
            "h1",
            &format!("docker run -d --net n1 --ip {ip} tabby/busybox sleep 1d"),
        );
        let returned = Instant::now();
        run_times.push((returned - started).as_secs_f64() * 1000.0);
        let needle = format!("{ip} via ");
        let deadline = returned + Duration::from_secs(10);
        let appeared = loop {
            if let Some((t, _)) = seen
                .lock()
                .unwrap()
                .iter()
                .find(|(_, l)| l.starts_with(&needle))
            {
                break *t;
            }
            assert!(Instant::now() < deadline, "no route for {ip} on h2");
            std::thread::sleep(Duration::from_millis(2));
        };
        // The route may be there before docker run returns (the address
        // is allocated early in the run): that counts as 0.
        delays.push(appeared.saturating_duration_since(returned).as_secs_f64() * 1000.0);
        from_start.push((appeared - started).as_secs_f64() * 1000.0);
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    let slowest = (0..from_start.len())
        .max_by(|a, b| from_start[*a].partial_cmp(&from_start[*b]).unwrap())
        .unwrap();
    println!(
        "[{what}]   slowest: container {} of 50, {:.0} ms after docker run started",
        slowest + 1,
        from_start[slowest]
    );
    let early = delays.iter().filter(|d| **d == 0.0).count();
    println!(
        "[{what}] route convergence h1 -> h2 over 50 containers, after docker run returned: p50 {:.1} ms  p99 {:.1} ms  ({early}/50 already there); docker run p50 {:.0} ms",
        percentile(delays.clone(), 50.0),
        percentile(delays, 99.0),
        percentile(run_times, 50.0)
    );
    println!(
        "[{what}]   route on h2 after docker run started: p50 {:.0} ms  p99 {:.0} ms",
        percentile(from_start.clone(), 50.0),
        percentile(from_start, 99.0),
    );
}

/// Agent and BIRD RSS with 100 endpoints on each of h1..h3.
fn memory(lab: &Lab, what: &str) {
    std::thread::scope(|scope| {
        for host in ["h1", "h2", "h3"] {
            scope.spawn(move || {
                let have: usize = lab.sh(host, "docker ps -q | wc -l").trim().parse().unwrap();
                lab.sh(
                    host,
                    &format!("for i in $(seq {} 100); do docker run -d --net n1 tabby/busybox sleep 1d >/dev/null; done", have + 1),
                );
            });
        }
    });
    std::thread::sleep(Duration::from_secs(5));
    for host in ["h1", "h2", "h3"] {
        let endpoints = lab.sh(host, "docker ps -q | wc -l");
        let agent = pidfile_rss_mb(&lab.dir().join(host).join("agent.pid"));
        let bird = pidfile_rss_mb(&lab.dir().join(host).join("bird/bird.pid"));
        println!(
            "[{what}] RSS on {host} with {} endpoints: agent {agent:.1} MB + BIRD {bird:.1} MB = {:.1} MB",
            endpoints.trim(),
            agent + bird
        );
    }
}
