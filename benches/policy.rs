//! `cargo bench --bench policy` (or `scripts/bench policy`):
//! 1. for each firewall backend (nftables, iptables) side by side, in a
//!    scratch network namespace with synthetic endpoints of one host, for
//!    10, 100, 1,000 and 10,000 endpoints: the time to program them all
//!    from scratch, then to add one endpoint, remove one, and change a
//!    tag's membership (an endpoint of another host joins a tag), and the
//!    rules per endpoint;
//! 2. TCP throughput between containers on two lab hosts with tabby's
//!    policy in the path, against the same path with the policy short-cut
//!    to accept, alternated in one run (the lab's default backend, or
//!    `TABBY_FIREWALL`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use support::Lab;
use tabby::model::{Endpoint, EndpointState};
use tabby::policy::rules::{default_profile, parse_rule};
use tabby::policy::{Backend, Firewall, PolicyInput, PolicyState, render};

const INSIDE: &str = "TABBY_BENCH_POLICY_INSIDE";

fn endpoints(range: std::ops::Range<usize>, host: &str) -> Vec<Endpoint> {
    range
        .map(|i| {
            // Random-looking like Docker's: chain and veth names take the
            // first 12 and 10 hex digits, and iptables' dispatch tree
            // buckets by the first.
            let hash = tabby::hash::fnv1a(&(i as u64).to_le_bytes());
            let id = format!("{hash:016x}{i:048x}");
            Endpoint {
                veth: tabby::dataplane::host_veth_name(&id),
                id,
                network_id: "bench".into(),
                host: host.into(),
                ip: std::net::Ipv4Addr::from(
                    u32::from(std::net::Ipv4Addr::new(198, 18, 64, 0)) + i as u32,
                ),
                ip6: None,
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

/// `n` local endpoints, and `remote` endpoints of another host (they
/// only fill tag sets).
fn state(n: usize, remote: usize) -> Arc<PolicyState> {
    let mut db = default_profile("db");
    db.inbound
        .push(parse_rule(&["allow", "tcp", "from", "tag", "web", "to", "ports", "3306"]).unwrap());
    let profiles = [default_profile("web"), db];
    let local = endpoints(0..n, "bench");
    let mut all = local.clone();
    all.extend(endpoints(100_000..100_000 + remote, "other"));
    Arc::new(render(&PolicyInput {
        local: &local,
        all: &all,
        profiles: &profiles,
        exposures: &[],
        quarantined: &[],
        vxlan_peers: None,
    }))
}

/// Rules in the backend's own terms: iptables rule specs (dispatch tree
/// included); nftables rules (dispatch is map elements, not rules).
fn rules(backend: Backend, state: &PolicyState) -> usize {
    match backend {
        Backend::Iptables => {
            let text = tabby::policy::iptables::text::lay_out(&state.ruleset);
            text.filter.rule_count() + text.nat.rule_count()
        }
        _ => state.ruleset.filter.rule_count() + state.ruleset.nat.rule_count(),
    }
}

async fn timed(fw: &dyn Firewall, state: &Arc<PolicyState>) -> f64 {
    let started = Instant::now();
    fw.apply(state.clone()).await.expect("firewall applies");
    started.elapsed().as_secs_f64() * 1000.0
}

/// Median of five changes, each timed from the state `base` to `change`
/// and back (only the first leg is timed): (until `apply` returned, until
/// the kernel held it). A change that only removes returns before its
/// commit is done (nftables); applying the same state again waits for it.
async fn median_change(
    fw: &dyn Firewall,
    base: &Arc<PolicyState>,
    change: &Arc<PolicyState>,
) -> (f64, f64) {
    let (mut returned, mut settled) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let started = Instant::now();
        returned.push(timed(fw, change).await);
        fw.apply(change.clone()).await.expect("firewall applies");
        settled.push(started.elapsed().as_secs_f64() * 1000.0);
        // Back, and settled again (a removal done) before the next leg.
        for _ in 0..2 {
            fw.apply(base.clone()).await.expect("firewall applies");
        }
    }
    (median(returned), median(settled))
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

/// Leaves nothing of either backend in the namespace.
fn clean() {
    tabby::policy::iptables::remove_all().expect("iptables cleanup");
    tabby::policy::nftables::remove_table().expect("nftables cleanup");
}

async fn one_size(backend: Backend, n: usize, base_rules: usize) {
    clean();
    let fw: Arc<dyn Firewall> = backend.firewall();
    let base = state(n, 0);
    let scratch = timed(fw.as_ref(), &base).await;
    let (add, _) = median_change(fw.as_ref(), &base, &state(n + 1, 0)).await;
    let fw_less: Arc<dyn Firewall> = backend.firewall();
    let fuller = state(n + 1, 0);
    fw_less
        .apply(fuller.clone())
        .await
        .expect("firewall applies");
    let (remove, removed) = median_change(fw_less.as_ref(), &fuller, &state(n, 0)).await;
    let (tag, _) = median_change(fw_less.as_ref(), &fuller, &state(n + 1, 1)).await;
    let count = rules(backend, &base);
    println!(
        "{:8} {n:6} endpoints: from scratch {scratch:8.1} ms; add one {add:6.1} ms; remove one {remove:6.1} ms (in the kernel {removed:5.1} ms); tag change {tag:6.1} ms; {count:6} rules, {:.1} per endpoint",
        backend.name(),
        (count - base_rules) as f64 / n as f64,
    );
}

/// Runs inside a scratch network namespace: its firewall is its own.
#[tokio::main]
async fn inside() {
    let only: Option<usize> = std::env::var("TABBY_BENCH_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    let backends = match std::env::var("TABBY_BENCH_BACKEND").as_deref() {
        Ok("nftables") => vec![Backend::Nftables],
        Ok("iptables") => vec![Backend::Iptables],
        _ => vec![Backend::Nftables, Backend::Iptables],
    };
    for backend in backends {
        let base_rules = rules(backend, &state(0, 0));
        for n in [10, 100, 1000, 10_000]
            .into_iter()
            .filter(|n| only.is_none_or(|o| o == *n))
        {
            one_size(backend, n, base_rules).await;
        }
    }
    clean();
}

/// Inserts (or removes) an accept ahead of tabby's policy on a lab host:
/// the baseline path without policy.
fn short_cut(lab: &Lab, host: &str, on: bool) {
    let command = match (support::firewall::nftables(), on) {
        (true, true) => {
            "nft insert rule inet tabby forward meta mark set meta mark or 0x100000 accept comment shortcut"
        }
        (true, false) => {
            "nft -a list chain inet tabby forward | awk '/comment \"shortcut\"/ {print $NF}' | xargs -r -n1 nft delete rule inet tabby forward handle"
        }
        (false, true) => "iptables -I FORWARD 1 -j ACCEPT",
        (false, false) => "iptables -D FORWARD -j ACCEPT",
    };
    lab.sh(host, command);
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
            short_cut(&lab, h, true);
        }
        off.push(lab.iperf_gbps(("h1", Some("c1")), ("h2", Some("c2")), &c2));
        for h in ["h1", "h2"] {
            short_cut(&lab, h, false);
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
    println!(
        "ratio on/off {:.3} ({} backend)",
        mon / moff,
        support::firewall::backend()
    );
}
