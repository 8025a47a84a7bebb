//! `cargo bench --bench policy` (or `scripts/bench policy`):
//! 1. time to program the firewall and the number of iptables rules for
//!    10, 100 and 1,000 endpoints on one host (in a scratch network
//!    namespace, with synthetic endpoints), and the time to add one
//!    endpoint when 1,000 exist;
//! 2. TCP throughput between containers on two lab hosts with tabby's
//!    policy in the path, against the same path with FORWARD short-cut to
//!    ACCEPT, alternated in one run.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Instant;

use chrono::Utc;
use support::Lab;
use tabby::model::{Endpoint, EndpointState};
use tabby::policy::iptables::IptablesFirewall;
use tabby::policy::rules::{default_profile, parse_rule};
use tabby::policy::{Firewall, PolicyInput, PolicyState, render};

const INSIDE: &str = "TABBY_BENCH_POLICY_INSIDE";

fn endpoints(n: usize) -> Vec<Endpoint> {
    (0..n)
        .map(|i| {
            let id = format!("{i:064x}");
            Endpoint {
                veth: tabby::dataplane::host_veth_name(&id),
                id,
                network_id: "bench".into(),
                host: "bench".into(),
                ip: std::net::Ipv4Addr::from(
                    u32::from(std::net::Ipv4Addr::new(198, 18, 64, 0)) + i as u32,
                ),
                mac: None,
                container: None,
                state: EndpointState::Joined,
                created: Utc::now(),
                profiles: vec![if i % 2 == 0 { "web" } else { "db" }.into()],
                labels: Default::default(),
                sandbox: None,
                gateway: None,
            }
        })
        .collect()
}

fn state(n: usize) -> PolicyState {
    let mut db = default_profile("db");
    db.inbound
        .push(parse_rule(&["allow", "tcp", "from", "tag", "web", "to", "ports", "3306"]).unwrap());
    let profiles = [default_profile("web"), db];
    let eps = endpoints(n);
    render(&PolicyInput {
        local: &eps,
        all: &eps,
        profiles: &profiles,
        exposures: &[],
        quarantined: &[],
    })
}

/// iptables rules, dispatch included.
fn rules(state: &PolicyState) -> usize {
    let text = tabby::policy::iptables::text::lay_out(&state.ruleset);
    text.filter.rule_count() + text.nat.rule_count()
}

async fn timed(fw: &IptablesFirewall, state: &PolicyState) -> f64 {
    let started = Instant::now();
    fw.apply(state).await.expect("firewall applies");
    started.elapsed().as_secs_f64() * 1000.0
}

/// Runs inside a scratch network namespace: its iptables are its own.
#[tokio::main]
async fn inside() {
    let base = rules(&state(0));
    for n in [10, 100, 1000] {
        let fw = IptablesFirewall::default();
        // Start from nothing each time.
        fw.apply(&state(0)).await.unwrap();
        let fw = IptablesFirewall::default();
        let s = state(n);
        let ms = timed(&fw, &s).await;
        println!(
            "{n:5} endpoints: programmed in {ms:7.1} ms, {:6} rules, {:.1} rules per endpoint, {} ipsets",
            rules(&s),
            (rules(&s) - base) as f64 / n as f64,
            s.sets.len()
        );
    }
    let fw = IptablesFirewall::default();
    fw.apply(&state(1000)).await.unwrap();
    let mut adds = Vec::new();
    for extra in 1..=5 {
        adds.push(timed(&fw, &state(1000 + extra)).await);
    }
    adds.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "add one endpoint when 1,000 exist: median {:.1} ms, max {:.1} ms (5 tries)",
        adds[2], adds[4]
    );
}

fn main() {
    if std::env::var_os(INSIDE).is_some() {
        inside();
        return;
    }
    let ns = format!("tabby-bench-{}", std::process::id());
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success()
    );
    let status = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(std::env::current_exe().unwrap())
        .env(INSIDE, "1")
        .status();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    assert!(status.unwrap().success());

    let lab = Lab::up(2);
    lab.sh(
        "h1",
        "tabby network create n1 --subnet 198.18.64.0/20 --profile bench",
    );
    lab.sh(
        "h1",
        "docker run -d --name c1 --net n1 tabby/busybox sleep 1d",
    );
    lab.sh(
        "h2",
        "docker run -d --name c2 --net n1 tabby/busybox sleep 1d",
    );
    let c2 = lab.container_ip("h2", "c2");
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        on.push(lab.iperf_gbps(("h1", Some("c1")), ("h2", Some("c2")), &c2));
        for h in ["h1", "h2"] {
            lab.sh(h, "iptables -I FORWARD 1 -j ACCEPT");
        }
        off.push(lab.iperf_gbps(("h1", Some("c1")), ("h2", Some("c2")), &c2));
        for h in ["h1", "h2"] {
            lab.sh(h, "iptables -D FORWARD -j ACCEPT");
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[1]
    };
    let (mon, moff) = (median(on.clone()), median(off.clone()));
    println!(
        "iperf3 h1 -> h2 containers, 3 x 4 s alternated: policy on {mon:.2} Gbit/s {on:.2?}, off {moff:.2} Gbit/s {off:.2?}"
    );
    println!("ratio on/off {:.3}", mon / moff);
}
