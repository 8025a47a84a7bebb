//! `cargo bench --bench mysql` (or `scripts/bench mysql`): MariaDB
//! replication on tabby across three lab hosts against the same three
//! containers on one host's Docker bridge network, in the same run:
//! 1. seconds from the three `docker run`s returning until the servers
//!    accept connections, and then until `tabby mysql bootstrap` has
//!    verified replication;
//! 2. replication lag under a steady insert load (about 100 rows/s from a
//!    client on h1): the time from a committed write on the master until
//!    both replicas have applied it (`MASTER_GTID_WAIT`), p50/p99 over
//!    probes, the two setups alternated.

#[path = "sql_bench/mod.rs"]
mod sql_bench;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Lab, eventually};

use sql_bench::{in_netns, percentile, target};
use tabby::mysql::{Credentials, Member, Password};

const PASSWORD: &str = "bench-pw";
const PROBES: usize = 150;
const ROUNDS: usize = 2;

struct Setup {
    label: &'static str,
    master: Ipv4Addr,
    replicas: Vec<Ipv4Addr>,
}

/// Lag samples in ms: each probe commits on the master, then waits for
/// every replica to apply that GTID, while a writer keeps inserting.
async fn lag_ms(master: Ipv4Addr, replicas: Vec<Ipv4Addr>) -> Vec<f64> {
    let credentials = Credentials::new(Password::new(PASSWORD), "repl", None);
    let mut writer = Member::connect(&target(master), &credentials)
        .await
        .unwrap();
    let mut prober = Member::connect(&target(master), &credentials)
        .await
        .unwrap();
    let mut followers = Vec::new();
    for ip in replicas {
        followers.push(Member::connect(&target(ip), &credentials).await.unwrap());
    }
    for sql in [
        "CREATE DATABASE IF NOT EXISTS bench",
        "CREATE TABLE IF NOT EXISTS bench.load (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100))",
        "CREATE TABLE IF NOT EXISTS bench.probe (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))",
    ] {
        writer.exec("bench schema", sql).await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let load = tokio::spawn(async move {
        let mut rows = 0u64;
        while !stopped.load(Ordering::Relaxed) {
            writer
                .exec(
                    "load",
                    "INSERT INTO bench.load (v) VALUES (REPEAT('x', 100))",
                )
                .await
                .unwrap();
            rows += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        rows
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = Vec::new();
    for _ in 0..PROBES {
        prober
            .exec("probe", "INSERT INTO bench.probe (at) VALUES (NOW(6))")
            .await
            .unwrap();
        let gtid: String = prober
            .first("probe gtid", "SELECT @@last_gtid")
            .await
            .unwrap()
            .unwrap();
        let started = Instant::now();
        let waits = followers
            .iter_mut()
            .map(|f| f.wait_for_gtid(&gtid, Duration::from_secs(10)));
        for applied in futures::future::join_all(waits).await {
            assert!(applied.unwrap(), "a replica did not apply {gtid}");
        }
        samples.push(started.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let rows = load.await.unwrap();
    eprintln!("  ({rows} rows of background load)");
    samples
}

fn measure(netns: &Path, setup: &Setup) -> Vec<f64> {
    let (master, replicas) = (setup.master, setup.replicas.clone());
    in_netns(netns.to_path_buf(), move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(lag_ms(master, replicas))
    })
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("root-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    // tabby refuses password files that group or others can read.
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env = dir.path().join("mariadb.env");
    std::fs::write(&env, format!("MYSQL_ROOT_PASSWORD={PASSWORD}\n")).unwrap();
    let lab = Lab::up_with(3, &[("TABBY_LAB_DOCKER_BRIDGE", "1")]);
    lab.import_image("mariadb", &["h1", "h2", "h3"]);
    lab.sh(
        "h1",
        "tabby network create mysql-net --subnet 198.18.64.0/20",
    );
    lab.sh(
        "h1",
        "tabby profile mysql-net rule add inbound allow tcp from cidr 198.18.0.11/32 to ports 3306",
    );
    lab.sh(
        "h1",
        "docker network create -d bridge --subnet 198.19.50.0/24 one-host",
    );

    let run = |host: &str, name: &str, net: &str, id: u32| {
        lab.sh(host, &format!(
            "docker run -d --name {name} --net {net} --env-file {} tabby/mariadb --log-bin --log-slave-updates --server-id={id}",
            env.display()
        ));
        lab.container_ip(host, name)
    };
    let bootstrap = |label: &str, members: [(&str, &str, &str, u32); 3], extra: &str| {
        let started = Instant::now();
        let ips: Vec<String> = members
            .iter()
            .map(|(host, name, net, id)| run(host, name, net, *id))
            .collect();
        let status = format!(
            "tabby mysql status {} --root-password-file {}",
            ips.join(" "),
            pw.display()
        );
        eventually(
            Duration::from_secs(180),
            "servers to accept connections",
            || lab.try_sh("h1", &status).then_some(()),
        );
        let ready = started.elapsed();
        let at = Instant::now();
        lab.sh("h1", &format!(
            "tabby mysql bootstrap --cluster {label} --master {} --replica {} --replica {} {extra} --root-password-file {}",
            ips[0], ips[1], ips[2], pw.display()
        ));
        let boot = at.elapsed();
        println!(
            "{label:>7}: docker run -> accepting connections {:.1} s; bootstrap to verified replication {:.2} s",
            ready.as_secs_f64(),
            boot.as_secs_f64()
        );
        Setup {
            label: if label == "tabby" {
                "tabby, across 3 hosts"
            } else {
                "Docker bridge, 1 host"
            },
            master: ips[0].parse().unwrap(),
            replicas: ips[1..].iter().map(|ip| ip.parse().unwrap()).collect(),
        }
    };
    let tabby = bootstrap(
        "tabby",
        [
            ("h1", "t-master", "mysql-net", 1),
            ("h2", "t-replica1", "mysql-net", 2),
            ("h3", "t-replica2", "mysql-net", 3),
        ],
        "",
    );
    let bridge = bootstrap(
        "bridge",
        [
            ("h1", "b-master", "one-host", 11),
            ("h1", "b-replica1", "one-host", 12),
            ("h1", "b-replica2", "one-host", 13),
        ],
        "--repl-host 198.19.50.%",
    );

    let netns = lab.netns_path("h1");
    let (mut on_tabby, mut on_bridge) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        on_tabby.extend(measure(&netns, &tabby));
        on_bridge.extend(measure(&netns, &bridge));
    }
    for (setup, samples) in [(&tabby, &on_tabby), (&bridge, &on_bridge)] {
        println!(
            "replication lag, {}: p50 {:.2} ms, p99 {:.2} ms ({} probes)",
            setup.label,
            percentile(samples.clone(), 50.0),
            percentile(samples.clone(), 99.0),
            samples.len()
        );
    }
    println!(
        "ratio tabby/bridge: p50 {:.2}, p99 {:.2}",
        percentile(on_tabby.clone(), 50.0) / percentile(on_bridge.clone(), 50.0),
        percentile(on_tabby, 99.0) / percentile(on_bridge, 99.0)
    );
}
