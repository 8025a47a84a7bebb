//! `cargo bench --bench galera` (part of `scripts/bench mysql`): a MariaDB
//! Galera cluster on tabby across three lab hosts against the same three
//! containers on one host's Docker bridge network, in the same run:
//! 1. seconds from three running containers until the cluster is verified:
//!    on tabby, `tabby mysql galera bootstrap` (which restarts the members
//!    with their config); on the bridge, the same steps by hand, as the
//!    source article's entrypoint does them (first member started with
//!    `gcomm://`, the others restarted with every address);
//! 2. commit latency under a steady insert load (about 100 rows/s on the
//!    first member): from a committed write on the first member until the
//!    third member returns the row, p50/p99, the two setups alternated.

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
const GALERA_ARGS: &str = "--wsrep-on=ON --wsrep-provider=/usr/lib/galera/libgalera_smm.so \
                           --binlog-format=ROW --innodb-autoinc-lock-mode=2";

/// Latency samples in ms: each probe commits a row on `writer_ip`, then
/// polls `reader_ip` (without causality waits) until the row is there.
async fn commit_latency_ms(writer_ip: Ipv4Addr, reader_ip: Ipv4Addr) -> Vec<f64> {
    let credentials = Credentials::new(Password::new(PASSWORD), "repl", None);
    let mut load = Member::connect(&target(writer_ip), &credentials)
        .await
        .unwrap();
    let mut prober = Member::connect(&target(writer_ip), &credentials)
        .await
        .unwrap();
    let mut reader = Member::connect(&target(reader_ip), &credentials)
        .await
        .unwrap();
    for sql in [
        "CREATE DATABASE IF NOT EXISTS bench",
        "CREATE TABLE IF NOT EXISTS bench.load (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100))",
        "CREATE TABLE IF NOT EXISTS bench.probe (id BIGINT PRIMARY KEY, at DATETIME(6))",
    ] {
        load.exec("bench schema", sql).await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let writer = tokio::spawn(async move {
        let mut rows = 0u64;
        while !stopped.load(Ordering::Relaxed) {
            load.exec(
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
    let base: i64 = prober
        .first::<Option<i64>>("probe base", "SELECT MAX(id) FROM bench.probe")
        .await
        .unwrap()
        .flatten()
        .unwrap_or(0);
    let mut samples = Vec::new();
    for i in 1..=PROBES as i64 {
        let id = base + i;
        prober
            .exec(
                "probe",
                &format!("INSERT INTO bench.probe VALUES ({id}, NOW(6))"),
            )
            .await
            .unwrap();
        let started = Instant::now();
        loop {
            let seen: Option<i64> = reader
                .first(
                    "read probe",
                    &format!("SELECT id FROM bench.probe WHERE id = {id}"),
                )
                .await
                .unwrap();
            if seen.is_some() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "row {id} never arrived"
            );
        }
        samples.push(started.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let rows = writer.await.unwrap();
    eprintln!("  ({rows} rows of background load)");
    samples
}

fn measure(netns: &Path, writer: Ipv4Addr, reader: Ipv4Addr) -> Vec<f64> {
    in_netns(netns.to_path_buf(), move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(commit_latency_ms(writer, reader))
    })
}

fn synced(lab: &Lab, host: &str, name: &str, size: u32) -> bool {
    let out = lab.sql_output(
        host,
        name,
        PASSWORD,
        "SELECT GROUP_CONCAT(VARIABLE_VALUE ORDER BY VARIABLE_NAME) FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME IN ('WSREP_CLUSTER_SIZE', 'WSREP_LOCAL_STATE_COMMENT')",
    );
    support::stdout(&out).trim() == format!("{size},Synced")
}

/// The bridge baseline, formed as the article's entrypoint would: the
/// first member restarted as a new cluster, the others with every address.
fn bridge_cluster(lab: &Lab, names: &[&str], ips: &[String]) {
    let all = format!("gcomm://{}", ips.join(","));
    for (i, name) in names.iter().enumerate() {
        let address = if i == 0 {
            "gcomm://".to_string()
        } else {
            all.clone()
        };
        lab.sh(
            "h1",
            &format!(
                "printf '[mariadbd]\\nwsrep_cluster_name=bridge\\nwsrep_cluster_address={address}\\nwsrep_sst_method=rsync\\n' > /tmp/bench-galera-{name}.cnf && \
                 docker cp /tmp/bench-galera-{name}.cnf {name}:/etc/mysql/conf.d/zz-tabby-galera.cnf && \
                 rm /tmp/bench-galera-{name}.cnf && docker restart {name}"
            ),
        );
        eventually(Duration::from_secs(300), &format!("{name} Synced"), || {
            synced(lab, "h1", name, i as u32 + 1).then_some(())
        });
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("root-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env = dir.path().join("mariadb.env");
    std::fs::write(&env, format!("MYSQL_ROOT_PASSWORD={PASSWORD}\n")).unwrap();
    let lab = Lab::up_with(3, &[("TABBY_LAB_DOCKER_BRIDGE", "1")]);
    lab.import_image("mariadb", &["h1", "h2", "h3"]);
    lab.sh(
        "h1",
        "tabby network create galera-net --subnet 198.18.64.0/20",
    );
    lab.sh(
        "h1",
        "tabby profile galera-net rule add inbound allow tcp from cidr 198.18.0.11/32 to ports 3306",
    );
    lab.sh(
        "h1",
        "docker network create -d bridge --subnet 198.19.50.0/24 one-host",
    );
    // The bridge members get fixed addresses: Docker may hand out others
    // when they restart, and their config lists them.
    let run = |host: &str, name: &str, net: &str| {
        let fixed = match name.strip_prefix('b') {
            Some(n) => format!("--ip 198.19.50.1{n}"),
            None => String::new(),
        };
        lab.sh(
            host,
            &format!(
                "docker run -d --name {name} --net {net} {fixed} --env-file {} tabby/mariadb {GALERA_ARGS}",
                env.display()
            ),
        );
        lab.wait_answering(host, name, PASSWORD);
        lab.container_ip(host, name)
    };

    let tabby: Vec<String> = [("h1", "t1"), ("h2", "t2"), ("h3", "t3")]
        .iter()
        .map(|(h, n)| run(h, n, "galera-net"))
        .collect();
    let started = Instant::now();
    lab.sh(
        "h1",
        &format!(
            "tabby mysql galera bootstrap --cluster bench --member t1 --member t2 --member t3 --root-password-file {}",
            pw.display()
        ),
    );
    let on_tabby_boot = started.elapsed();
    let names = ["b1", "b2", "b3"];
    let bridge: Vec<String> = names.iter().map(|n| run("h1", n, "one-host")).collect();
    let started = Instant::now();
    bridge_cluster(&lab, &names, &bridge);
    let on_bridge_boot = started.elapsed();
    println!(
        "galera: running containers -> verified cluster: tabby across 3 hosts {:.1} s, \
         Docker bridge on 1 host (same steps by hand) {:.1} s",
        on_tabby_boot.as_secs_f64(),
        on_bridge_boot.as_secs_f64()
    );

    let netns = lab.netns_path("h1");
    let ip = |s: &String| s.parse::<Ipv4Addr>().unwrap();
    let (mut on_tabby, mut on_bridge) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        on_tabby.extend(measure(&netns, ip(&tabby[0]), ip(&tabby[2])));
        on_bridge.extend(measure(&netns, ip(&bridge[0]), ip(&bridge[2])));
    }
    for (label, samples) in [
        ("tabby, h1 -> h3", &on_tabby),
        ("Docker bridge, 1 host", &on_bridge),
    ] {
        println!(
            "galera commit latency, {label}: p50 {:.2} ms, p99 {:.2} ms ({} probes)",
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
