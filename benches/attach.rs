//! `cargo bench --bench attach` (or `scripts/bench attach`): the cost of
//! attaching a container to a tabby network, against Docker's own bridge
//! driver in the same run on the same dockerd.
//!
//! Prints medians of `docker run --rm … true` for both drivers (alternated,
//! so drift hits both), the ratio, the plugin's own handling time per call
//! (from the agent's tracing), the full attach+detach cycle, and the
//! agent's idle RSS. The legacy agent runs on lab host h1; the managed
//! plugin (`scripts/build-plugin`) on h2, each measured against its own
//! host's bridge: two agents cannot share one host's kernel. Last, a
//! dual-stack (`--ipv6`) network against the IPv4-only one, alternated
//! on h1 after the call times are read (its runs make four IPAM calls),
//! beside the same pair made with Docker's bridge driver: what IPv6 costs
//! Docker itself.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::Lab;

const CALLS: [&str; 6] = [
    "/IpamDriver.RequestAddress",
    "/NetworkDriver.CreateEndpoint",
    "/NetworkDriver.Join",
    "/NetworkDriver.Leave",
    "/NetworkDriver.DeleteEndpoint",
    "/IpamDriver.ReleaseAddress",
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

const PLUGIN: &str = "tabby/tabby:latest";

fn time_run(lab: &Lab, host: &str, net: &str) -> f64 {
    let started = Instant::now();
    lab.sh(
        host,
        &format!("docker run --rm --net {net} tabby/busybox true"),
    );
    started.elapsed().as_secs_f64() * 1000.0
}

/// Replaces h2's legacy agent with the managed plugin, and makes its
/// network `n2`.
fn install_managed_plugin(lab: &Lab) {
    lab.stop("h2", "agent");
    let script = support::root().join("scripts/build-plugin");
    let build = format!(
        "{} --build-dir {}/plugin-build",
        script.display(),
        lab.dir().display()
    );
    lab.sh("h2", &build);
    lab.sh("h2", &format!(
        "docker plugin set {PLUGIN} TABBY_ETCD_ENDPOINTS=$TABBY_ETCD_ENDPOINTS TABBY_ETCD_PREFIX=$TABBY_ETCD_PREFIX \
         TABBY_IP=198.18.0.12 TABBY_HOSTNAME=h2 TABBY_DOCKER_HOST=unix:///var/run/docker.sock \
         docker-socket.source={}/h2/docker.sock && docker plugin enable {PLUGIN}",
        lab.dir().display()
    ));
    lab.sh(
        "h2",
        &format!(
            "docker network create -d {PLUGIN} --ipam-driver {PLUGIN} --subnet 198.18.64.0/20 n2"
        ),
    );
}

/// RSS of the managed plugin's agent: the process its containerd shim runs.
fn plugin_rss_kib(lab: &Lab) -> u64 {
    let pid = lab.sh(
        "h2",
        &format!(
            "for s in $(pgrep -f 'containerd-shim.*-namespace plugins.moby.*{}/h2/'); do pgrep -P $s tabby; done | head -1",
            lab.dir().display()
        ),
    );
    support::procfs::rss_kib(pid.trim()).unwrap_or(0)
}

/// (call, micros) of every plugin call the agent logged, in order.
fn plugin_calls(log: &str) -> Vec<(String, f64)> {
    log.lines()
        .filter(|l| l.contains("plugin call"))
        .filter_map(|l| {
            let call = l
                .split("call=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .to_string();
            let micros = l
                .split("micros=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((call, micros))
        })
        .collect()
}

fn rss_kib(lab: &Lab, host: &str) -> u64 {
    let pid = std::fs::read_to_string(lab.dir().join(host).join("agent.pid")).unwrap();
    support::procfs::rss_kib(pid.trim()).unwrap_or(0)
}

fn main() {
    let n: usize = std::env::var("TABBY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // SAFETY: set before any thread starts; the lab's processes inherit it.
    unsafe {
        std::env::set_var("TABBY_LAB_DOCKER_BRIDGE", "1");
        std::env::set_var("RUST_LOG", "info,tabby::api=debug");
    }
    let lab = Lab::up(2);
    lab.sh(
        "h1",
        "docker network create -d tabby --ipam-driver tabby --subnet 198.18.64.0/20 n1",
    );
    lab.sh(
        "h1",
        "docker network create -d tabby --ipam-driver tabby --ipv6 --subnet 198.18.64.0/20 --subnet 2001:2:0:1000::/64 n6",
    );
    install_managed_plugin(&lab);
    // A user-defined bridge network gets what every user-defined network
    // gets (embedded DNS), so it isolates the driver's own cost.
    lab.sh(
        "h1",
        "docker network create -d bridge --subnet 198.19.200.0/24 ubr",
    );
    lab.sh(
        "h1",
        "docker network create -d bridge --ipv6 --subnet 198.19.201.0/24 --subnet 2001:2:0:4000::/64 ubr6",
    );
    let runs = [
        ("h1", "n1"),
        ("h1", "bridge"),
        ("h1", "ubr"),
        ("h2", "n2"),
        ("h2", "bridge"),
    ];
    for (host, net) in runs.iter().chain(runs.iter()) {
        time_run(&lab, host, net); // warm caches on every path
    }
    let log_offset = lab.agent_log("h1").len();

    let mut times: Vec<Vec<f64>> = vec![Vec::new(); runs.len()];
    for _ in 0..n {
        for (i, (host, net)) in runs.iter().enumerate() {
            times[i].push(time_run(&lab, host, net));
        }
    }
    let mut times = times.into_iter().map(sorted);
    let (tabby, bridge, user_bridge) = (
        times.next().unwrap(),
        times.next().unwrap(),
        times.next().unwrap(),
    );
    let (managed, bridge2) = (times.next().unwrap(), times.next().unwrap());
    let (tm, bm) = (percentile(&tabby, 50.0), percentile(&bridge, 50.0));
    let um = percentile(&user_bridge, 50.0);

    let calls = plugin_calls(&lab.agent_log("h1")[log_offset..]);
    let mut others: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for (call, micros) in &calls {
        if !CALLS.contains(&call.as_str()) {
            let entry = others.entry(call.as_str()).or_default();
            entry.0 += 1;
            entry.1 += micros / 1000.0;
        }
    }
    let mut per_call: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut cycles = Vec::new();
    let mut cycle = 0.0;
    for (call, micros) in &calls {
        if let Some(name) = CALLS.iter().find(|c| *c == call) {
            per_call.entry(name).or_default().push(*micros / 1000.0);
            if *name == CALLS[0] && cycle > 0.0 {
                cycles.push(cycle);
                cycle = 0.0;
            }
            cycle += micros / 1000.0;
        }
    }
    if cycle > 0.0 {
        cycles.push(cycle);
    }
    let dual_offset = lab.agent_log("h1").len();
    let [v4, dual, bridge4, bridge6] = dual_stack_runs(&lab, n);
    let [v4_cycles, dual_cycles] =
        cycles_by_family(&plugin_calls(&lab.agent_log("h1")[dual_offset..]));
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_kib(&lab, "h1");
    let plugin_rss = plugin_rss_kib(&lab);

    println!(
        "attach benchmark: {n} runs per network, alternated; legacy agent on h1, managed plugin on h2"
    );
    println!(
        "docker run --rm … true   tabby p50 {tm:.0} ms   bridge p50 {bm:.0} ms   ratio tabby/bridge {:.3}",
        tm / bm
    );
    println!(
        "                         tabby p90 {:.0} ms   bridge p90 {:.0} ms",
        percentile(&tabby, 90.0),
        percentile(&bridge, 90.0)
    );
    println!(
        "user-defined bridge net  p50 {um:.0} ms   ratio tabby/user-defined bridge {:.3}",
        tm / um
    );
    let (mm, b2m) = (percentile(&managed, 50.0), percentile(&bridge2, 50.0));
    println!(
        "managed plugin (h2)      tabby p50 {mm:.0} ms   bridge p50 {b2m:.0} ms   ratio managed/bridge {:.3}",
        mm / b2m
    );
    println!("plugin handling time per call (legacy agent, server side, ms):");
    for name in CALLS {
        let v = sorted(per_call.remove(name).unwrap_or_default());
        println!(
            "  {name:32} n={:3}  p50 {:6.2}  p99 {:6.2}",
            v.len(),
            percentile(&v, 50.0),
            percentile(&v, 99.0)
        );
    }
    for (call, (count, total)) in others {
        println!("  {call:32} n={count:3}  mean {:6.2}", total / count as f64);
    }
    let cycles = sorted(cycles);
    println!(
        "full attach+detach cycle (6 calls): n={} p50 {:.2} ms  p99 {:.2} ms",
        cycles.len(),
        percentile(&cycles, 50.0),
        percentile(&cycles, 99.0)
    );
    let (v4m, dualm) = (percentile(&v4, 50.0), percentile(&dual, 50.0));
    println!(
        "dual-stack network (h1)  p50 {dualm:.0} ms   IPv4-only p50 {v4m:.0} ms   ratio dual/IPv4 {:.3} (target <= 1.10)",
        dualm / v4m
    );
    let (c4, c6) = (percentile(&v4_cycles, 50.0), percentile(&dual_cycles, 50.0));
    println!(
        "tabby's own cycle        dual-stack p50 {c6:.2} ms   IPv4-only p50 {c4:.2} ms   (n={}, {}): adds {:.2} ms, {:.1}% of the IPv4-only docker run",
        dual_cycles.len(),
        v4_cycles.len(),
        c6 - c4,
        100.0 * (c6 - c4) / v4m
    );
    let (b4m, b6m) = (percentile(&bridge4, 50.0), percentile(&bridge6, 50.0));
    println!(
        "Docker bridge, same pair p50 {b6m:.0} ms   IPv4-only p50 {b4m:.0} ms   ratio dual/IPv4 {:.3}",
        b6m / b4m
    );
    println!(
        "agent RSS idle after the run: legacy {:.1} MB, managed plugin {:.1} MB",
        rss as f64 / 1024.0,
        plugin_rss as f64 / 1024.0
    );
}

/// `docker run` on tabby's IPv4-only and dual-stack networks and on the
/// same pair of Docker bridge networks, alternated: their times, sorted.
fn dual_stack_runs(lab: &Lab, n: usize) -> [Vec<f64>; 4] {
    let nets = ["n1", "n6", "ubr", "ubr6"];
    for net in nets {
        time_run(lab, "h1", net); // warm every path
    }
    let mut times: [Vec<f64>; 4] = Default::default();
    for _ in 0..n {
        for (i, net) in nets.iter().enumerate() {
            times[i].push(time_run(lab, "h1", net));
        }
    }
    times.map(sorted)
}

/// The plugin's handling time of each attach+detach cycle, sorted, split
/// by family: an IPv4-only cycle makes 6 calls, a dual-stack one 8 (an
/// address of each family requested and released). A cycle starts at a
/// RequestAddress that does not follow another.
fn cycles_by_family(calls: &[(String, f64)]) -> [Vec<f64>; 2] {
    let mut groups: Vec<Vec<f64>> = Vec::new();
    let mut last = "";
    for (call, micros) in calls.iter().filter(|(c, _)| CALLS.contains(&c.as_str())) {
        if call == CALLS[0] && last != CALLS[0] {
            groups.push(Vec::new());
        }
        if let Some(group) = groups.last_mut() {
            group.push(micros / 1000.0);
        }
        last = call;
    }
    let total = |len: usize| {
        let cycles = groups.iter().filter(|g| g.len() == len);
        sorted(cycles.map(|g| g.iter().sum()).collect())
    };
    [total(CALLS.len()), total(CALLS.len() + 2)]
}
