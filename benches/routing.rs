//! `cargo bench --bench routing` (or `scripts/bench routing`), on a
//! three-host lab:
//! 1. TCP throughput (iperf3) container h1 -> container h2, against host
//!    h1 -> host h2 in the same run (no encapsulation: should be equal);
//! 2. route convergence: from `docker run` returning on h1 until the
//!    container's /32 is in h2's routing table, over 50 containers;
//! 3. each agent's RSS with 100 endpoints per host.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::Lab;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[(((p / 100.0) * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
}

fn agent_rss_mb(lab: &Lab, host: &str) -> f64 {
    let pid = std::fs::read_to_string(lab.dir().join(host).join("agent.pid")).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

fn main() {
    let lab = Lab::up(3);
    lab.sh("h1", "tabby network create n1 --subnet 198.18.64.0/20");
    lab.sh(
        "h1",
        "docker run -d --name c1 --net n1 tabby/busybox sleep 1d",
    );
    lab.sh(
        "h2",
        "docker run -d --name c2 --net n1 tabby/busybox sleep 1d",
    );
    let c2 = lab.container_ip("h2", "c2");

    // 1. Throughput, alternated.
    let (mut host, mut container) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        host.push(lab.iperf_gbps(("h1", None), ("h2", None), "198.18.0.12"));
        container.push(lab.iperf_gbps(("h1", Some("c1")), ("h2", Some("c2")), &c2));
    }
    let (hm, cm) = (median(host.clone()), median(container.clone()));
    println!("iperf3 TCP, 3 x 4 s each, alternated: host h1->h2 median {hm:.2} Gbit/s {host:.2?}");
    println!(
        "                                     container h1->h2 median {cm:.2} Gbit/s {container:.2?}"
    );
    println!("ratio container/host {:.3}", cm / hm);

    // 2. Convergence. h3 claims a block; h1's containers borrow from it, so
    // each needs its own /32 on h2.
    lab.sh(
        "h3",
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
        let needle = format!("{ip} via 198.18.0.11");
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
        // The route is usually there before docker run returns (the address
        // is allocated early in the run): that counts as 0.
        delays.push(appeared.saturating_duration_since(returned).as_secs_f64() * 1000.0);
        from_start.push((appeared - started).as_secs_f64() * 1000.0);
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    let early = delays.iter().filter(|d| **d == 0.0).count();
    println!(
        "route convergence h1 -> h2 over 50 containers, after docker run returned: p50 {:.1} ms  p99 {:.1} ms  ({early}/50 already there)",
        percentile(delays.clone(), 50.0),
        percentile(delays, 99.0),
    );
    println!(
        "  route on h2 after docker run started: p50 {:.0} ms  p99 {:.0} ms; docker run itself: p50 {:.0} ms",
        percentile(from_start.clone(), 50.0),
        percentile(from_start, 99.0),
        percentile(run_times, 50.0)
    );

    // 3. Memory with 100 endpoints per host.
    std::thread::scope(|scope| {
        for host in ["h1", "h2", "h3"] {
            let lab = &lab;
            scope.spawn(move || {
                let have: usize = lab.sh(host, "docker ps -q | wc -l").trim().parse().unwrap();
                lab.sh(
                    host,
                    &format!(
                        "for i in $(seq {} 100); do docker run -d --net n1 tabby/busybox sleep 1d >/dev/null; done",
                        have + 1
                    ),
                );
            });
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    for host in ["h1", "h2", "h3"] {
        let endpoints = lab.sh(host, "docker ps -q | wc -l");
        println!(
            "agent RSS on {host} with {} endpoints: {:.1} MB",
            endpoints.trim(),
            agent_rss_mb(&lab, host)
        );
    }
}
