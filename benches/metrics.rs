//! `cargo bench --bench metrics` (or `scripts/bench metrics`): what the
//! metrics cost, on one lab host whose agent serves them on 127.0.0.1:9091.
//!
//! At 0 and at 1,000 local endpoints (made through the plugin protocol, as
//! dockerd makes them: RequestAddress, CreateEndpoint, Join, each with its
//! veth pair and route, without 1,000 containers' shims), it prints:
//! - a `/metrics` scrape's wall time, against a `/livez` request on the
//!   same listener in the same run (the HTTP round trip alone), and the
//!   agent's CPU time per scrape (from /proc, over many scrapes);
//! - the size of the text;
//! - the agent's RSS with metrics on, against the same agent restarted
//!   with metrics off at 1,000 endpoints.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::procfs::rss_mb;
use support::{Lab, eventually, http};

const LISTEN: &str = "127.0.0.1:9091";
const POOL: &str = "198.18.64.0/20";

fn scrapes() -> usize {
    std::env::var("TABBY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(2000, |n: usize| n.max(50))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn agent_pid(lab: &Lab) -> String {
    std::fs::read_to_string(lab.dir().join("h1/agent.pid"))
        .unwrap()
        .trim()
        .to_string()
}

/// User plus system CPU time of a process, in milliseconds.
fn cpu_ms(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // CLK_TCK is 100 on Linux.
    ticks * 10.0
}

/// `count` GETs of `path` over one connection, from inside h1: each
/// one's wall time in ms, and the agent's CPU time per request beyond what
/// it spends idle over as long a time (its periodic passes, which at
/// 1,000 endpoints cost more than a scrape).
fn timed_gets(lab: &Lab, path: &str, count: usize) -> (Vec<f64>, f64) {
    let url = format!("http://{LISTEN}{path}");
    let mut args = vec!["curl", "-s", "-o", "/dev/null", "-w", "%{time_total}\n"];
    args.extend(std::iter::repeat_n(url.as_str(), count));
    let pid = agent_pid(lab);
    let (cpu_before, started) = (cpu_ms(&pid), Instant::now());
    let out = lab.run("h1", &args);
    let (busy, took) = (cpu_ms(&pid) - cpu_before, started.elapsed());
    let idle_before = cpu_ms(&pid);
    std::thread::sleep(took);
    let idle = cpu_ms(&pid) - idle_before;
    let cpu = (busy - idle).max(0.0) / count as f64;
    let times = support::stdout(&out)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(|s| s * 1000.0)
        .collect::<Vec<_>>();
    assert_eq!(times.len(), count, "{}", support::stderr(&out));
    (times, cpu)
}

fn local_endpoints(lab: &Lab) -> Option<usize> {
    let text = lab.sh("h1", &format!("curl -s -m 5 http://{LISTEN}/metrics"));
    text.lines()
        .find(|l| l.starts_with("tabby_local_endpoints "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn measure(lab: &Lab, endpoints: usize) {
    eventually(Duration::from_secs(120), "the endpoint gauge", || {
        (local_endpoints(lab) == Some(endpoints)).then_some(())
    });
    let n = scrapes();
    let (mut metrics, mut livez) = (Vec::new(), Vec::new());
    let (mut metrics_cpu, mut livez_cpu) = (0.0, 0.0);
    // Alternated halves, so drift hits both.
    for _ in 0..2 {
        let (t, c) = timed_gets(lab, "/livez", n / 2);
        livez.extend(t);
        livez_cpu += c / 2.0;
        let (t, c) = timed_gets(lab, "/metrics", n / 2);
        metrics.extend(t);
        metrics_cpu += c / 2.0;
    }
    let bytes = lab
        .sh("h1", &format!("curl -s http://{LISTEN}/metrics"))
        .len();
    let (m, l) = (median(metrics), median(livez));
    println!(
        "[metrics] {endpoints} endpoints: /metrics scrape p50 {m:.3} ms vs /livez {l:.3} ms \
         (ratio {:.2}); agent CPU per scrape {metrics_cpu:.3} ms vs {livez_cpu:.3} ms; \
         {bytes} bytes; agent RSS {:.1} MB",
        m / l,
        rss_mb(&agent_pid(lab))
    );
}

/// `count` endpoints on network `net`, as dockerd attaches them.
fn attach(lab: &Lab, net: &str, pool_id: &str, count: usize) {
    let socket = lab.socket("h1");
    for i in 0..count {
        // Distinct in the first ten characters, which name the veths.
        let spread = (i as u32 + 1).wrapping_mul(2_654_435_761);
        let ep = format!("{spread:08x}{:056x}", i + 1);
        let address = http::post_ok(
            &socket,
            "/IpamDriver.RequestAddress",
            &json!({"PoolID": pool_id, "Address": "", "Options": null}),
        )["Address"]
            .as_str()
            .unwrap()
            .to_string();
        http::post_ok(
            &socket,
            "/NetworkDriver.CreateEndpoint",
            &json!({"NetworkID": net, "EndpointID": ep,
                "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""}, "Options": {}}),
        );
        http::post_ok(
            &socket,
            "/NetworkDriver.Join",
            &json!({"NetworkID": net, "EndpointID": ep,
                "SandboxKey": format!("/var/run/docker/netns/bench{i}"), "Options": {}}),
        );
    }
}

fn ready(lab: &Lab) {
    eventually(Duration::from_secs(120), "the agent ready", || {
        lab.try_sh("h1", "tabby status >/dev/null 2>&1")
            .then_some(())
    });
}

fn main() {
    // The endpoints have no containers, so Docker does not list them: the
    // agent's periodic repair would release them as stale.
    let lab = Lab::up_with(
        1,
        &[
            ("TABBY_METRICS_LISTEN", LISTEN),
            ("TABBY_IPAM_CHECK_INTERVAL", "0"),
        ],
    );
    lab.sh("h1", &format!("tabby network create n1 --subnet {POOL}"));
    let net = lab
        .sh("h1", "docker network inspect -f '{{.Id}}' n1")
        .trim()
        .to_string();
    let pool_id = http::post_ok(
        &lab.socket("h1"),
        "/IpamDriver.RequestPool",
        &json!({"AddressSpace": "tabby-local", "Pool": POOL, "SubPool": "", "Options": {}, "V6": false}),
    )["PoolID"]
        .as_str()
        .unwrap()
        .to_string();
    measure(&lab, 0);
    attach(&lab, &net, &pool_id, 1000);
    measure(&lab, 1000);

    // RSS after a fresh start at 1,000 endpoints, metrics on and off.
    let mut rss = Vec::new();
    for (what, listen) in [("on", LISTEN), ("off", "")] {
        lab.restart_agent("h1", &[("TABBY_METRICS_LISTEN", listen)]);
        ready(&lab);
        if !listen.is_empty() {
            measure(&lab, 1000);
        }
        std::thread::sleep(Duration::from_secs(3));
        rss.push((what, rss_mb(&agent_pid(&lab))));
    }
    println!(
        "[metrics] agent RSS at 1000 endpoints after a restart: metrics on {:.1} MB, off {:.1} MB (ratio {:.3})",
        rss[0].1,
        rss[1].1,
        rss[0].1 / rss[1].1
    );
}
