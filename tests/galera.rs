//! Galera clusters on tabby, against real MariaDB Galera containers on
//! three lab hosts: bootstrap with the source article's check, rows that
//! replicate from every member, a member killed and rejoining by IST, the
//! whole cluster killed and recovered from the newest member, a fourth
//! member joining by SST and leaving; and bootstrap refusing bad members
//! while changing nothing.

#[path = "galera/joins.rs"]
mod joins;
#[path = "galera/refusals.rs"]
mod refusals;
mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use support::{Lab, eventually, secret, shared_lab, stderr, stdout};

const PASSWORD: &str = "galera-pw-4711";
const GALERA_ARGS: &str = "--wsrep-on=ON --wsrep-provider=/usr/lib/galera/libgalera_smm.so \
                           --binlog-format=ROW --innodb-autoinc-lock-mode=2";

struct Files {
    password: PathBuf,
    env: PathBuf,
}

/// Three hosts, the MariaDB image on each, one network whose profile lets
/// the lab hosts (where `tabby mysql` runs) reach port 3306.
fn lab() -> (Arc<Lab>, Files) {
    let lab = shared_lab(|| {
        let lab = Lab::up(3);
        // Label-driven clusters need the agents to log in.
        let password = lab.dir().join("galera-root-password");
        secret(&password, &format!("{PASSWORD}\n"));
        for host in ["h1", "h2", "h3"] {
            lab.restart_agent(
                host,
                &[("TABBY_MYSQL_ROOT_PASSWORD_FILE", password.to_str().unwrap())],
            );
        }
        lab.import_image("mariadb", &["h1", "h2", "h3"]);
        lab.sh("h1", "tabby network create g1 --subnet 198.19.32.0/20");
        lab.sh(
            "h1",
            "tabby profile g1 rule add inbound allow tcp from cidr 198.18.0.0/24 to ports 3306",
        );
        lab
    });
    let files = Files {
        password: lab.dir().join("galera-root-password"),
        env: lab.dir().join("galera.env"),
    };
    secret(&files.password, &format!("{PASSWORD}\n"));
    secret(&files.env, &format!("MYSQL_ROOT_PASSWORD={PASSWORD}\n"));
    (lab, files)
}

fn run_member(lab: &Lab, files: &Files, host: &str, name: &str, args: &str) {
    run_labelled(lab, files, host, name, "", args);
}

fn run_labelled(lab: &Lab, files: &Files, host: &str, name: &str, labels: &str, args: &str) {
    lab.sh(
        host,
        &format!(
            "docker run -d --name {name} --net g1 {labels} --env-file {} tabby/mariadb {args}",
            files.env.display()
        ),
    );
    lab.wait_answering(host, name, PASSWORD);
}

fn status_var(lab: &Lab, host: &str, name: &str, var: &str) -> Option<String> {
    let out = lab.sql_output(
        host,
        name,
        PASSWORD,
        &format!("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '{var}'"),
    );
    out.status
        .success()
        .then(|| stdout(&out).trim().to_string())
}

fn count(lab: &Lab, host: &str, name: &str) -> Option<u64> {
    let out = lab.sql_output(
        host,
        name,
        PASSWORD,
        "SET SESSION wsrep_sync_wait = 1; SELECT COUNT(*) FROM app.t",
    );
    stdout(&out).trim().parse().ok()
}

fn wait_rows(lab: &Lab, host: &str, name: &str, rows: u64) {
    eventually(
        Duration::from_secs(120),
        &format!("{rows} rows on {name}"),
        || (count(lab, host, name) == Some(rows)).then_some(()),
    );
}

fn wait_synced(lab: &Lab, host: &str, name: &str, size: u32) {
    eventually(
        Duration::from_secs(180),
        &format!("{name} Synced in a cluster of {size}"),
        || {
            let synced = status_var(lab, host, name, "WSREP_LOCAL_STATE_COMMENT")
                .is_some_and(|s| s == "Synced");
            let sized = status_var(lab, host, name, "WSREP_CLUSTER_SIZE")
                .is_some_and(|s| s == size.to_string());
            (synced && sized).then_some(())
        },
    );
}

fn tabby(lab: &Lab, files: &Files, args: &str) -> std::process::Output {
    lab.run(
        "h1",
        &[
            "sh",
            "-c",
            &format!(
                "tabby mysql {args} --root-password-file {}",
                files.password.display()
            ),
        ],
    )
}

fn tabby_ok(lab: &Lab, files: &Files, args: &str) -> String {
    let out = tabby(lab, files, args);
    assert!(
        out.status.success(),
        "tabby mysql {args}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(!stdout(&out).contains(PASSWORD) && !stderr(&out).contains(PASSWORD));
    stdout(&out)
}

const MEMBERS: [(&str, &str); 3] = [("h1", "g1"), ("h2", "g2"), ("h3", "g3")];

#[test]
fn three_hosts_bootstrap_replicate_rejoin_recover_and_grow() {
    let (lab, files) = lab();
    for (host, name) in MEMBERS {
        run_member(&lab, &files, host, name, GALERA_ARGS);
    }
    let out = tabby_ok(
        &lab,
        &files,
        "galera bootstrap --cluster shop --member g1 --member g2 --member g3",
    );
    assert!(
        out.contains("3 members, Primary, every member Synced"),
        "{out}"
    );
    // The article's check, read by the servers themselves.
    let ips: Vec<String> = MEMBERS
        .iter()
        .map(|(h, n)| lab.container_ip(h, n))
        .collect();
    for (host, name) in MEMBERS {
        assert_eq!(
            status_var(&lab, host, name, "WSREP_CLUSTER_SIZE").as_deref(),
            Some("3")
        );
        assert_eq!(
            status_var(&lab, host, name, "WSREP_CLUSTER_STATUS").as_deref(),
            Some("Primary")
        );
        let incoming = status_var(&lab, host, name, "WSREP_INCOMING_ADDRESSES").unwrap();
        for ip in &ips {
            assert!(
                incoming
                    .split(',')
                    .any(|a| a.split(':').next() == Some(ip.as_str())),
                "{ip} not in {incoming}"
            );
        }
    }

    // 1,000 rows written on h1 are read on h2 and h3; a write on h3 on h1.
    lab.sql(
        "h1",
        "g1",
        PASSWORD,
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32)); \
         INSERT INTO app.t SELECT seq, CONCAT('v', seq) FROM app.seq_1_to_1000",
    );
    wait_rows(&lab, "h2", "g2", 1000);
    wait_rows(&lab, "h3", "g3", 1000);
    lab.sql(
        "h3",
        "g3",
        PASSWORD,
        "INSERT INTO app.t VALUES (5001, 'from h3')",
    );
    assert_eq!(
        lab.sql(
            "h1",
            "g1",
            PASSWORD,
            "SET SESSION wsrep_sync_wait = 1; SELECT v FROM app.t WHERE id = 5001"
        ),
        "from h3"
    );

    // Twice: nothing changes.
    let again = tabby_ok(
        &lab,
        &files,
        "galera bootstrap --cluster shop --member g1 --member g2 --member g3",
    );
    assert!(again.contains("(unchanged)"), "{again}");

    // g2 killed: h1 and h3 keep a Primary majority and take writes; g2
    // started again catches up by IST.
    lab.sh("h2", "docker kill g2");
    wait_synced(&lab, "h1", "g1", 2);
    lab.sql(
        "h1",
        "g1",
        PASSWORD,
        "INSERT INTO app.t SELECT seq, 'h1' FROM app.seq_1001_to_1100",
    );
    lab.sql(
        "h3",
        "g3",
        PASSWORD,
        "INSERT INTO app.t SELECT seq, 'h3' FROM app.seq_1101_to_1200",
    );
    lab.sh("h2", "docker start g2");
    wait_synced(&lab, "h2", "g2", 3);
    wait_rows(&lab, "h2", "g2", 1201);
    assert_eq!(
        status_var(&lab, "h1", "g1", "WSREP_CLUSTER_STATUS").as_deref(),
        Some("Primary")
    );
    let log = lab.sh("h2", "docker logs g2 2>&1");
    assert!(
        log.contains("IST received"),
        "g2 did not rejoin by IST:\n{log}"
    );

    // All killed: recover starts the cluster from the newest member and
    // loses no committed row. The dry run only reports.
    lab.sql(
        "h3",
        "g3",
        PASSWORD,
        "INSERT INTO app.t VALUES (5002, 'last')",
    );
    for (host, name) in MEMBERS {
        lab.sh(host, &format!("docker kill {name}"));
    }
    let plan = tabby_ok(&lab, &files, "galera recover --cluster shop --dry-run");
    assert!(
        plan.contains("Would recover") && plan.contains("starts the cluster"),
        "{plan}"
    );
    for (host, name) in MEMBERS {
        assert_eq!(
            lab.sh(
                host,
                &format!("docker inspect -f '{{{{.State.Running}}}}' {name}")
            )
            .trim(),
            "false"
        );
    }
    let out = tabby_ok(&lab, &files, "galera recover --cluster shop");
    assert!(
        out.contains("3 members, Primary, every member Synced"),
        "{out}"
    );
    for (host, name) in MEMBERS {
        wait_rows(&lab, host, name, 1202);
    }

    // A fourth member joins by state transfer, then leaves cleanly.
    run_member(&lab, &files, "h1", "g4", GALERA_ARGS);
    let out = tabby_ok(&lab, &files, "galera join --cluster shop g4");
    assert!(out.contains("4 members, Primary"), "{out}");
    wait_rows(&lab, "h1", "g4", 1202);
    let status = tabby_ok(&lab, &files, "status --cluster shop");
    for shown in ["g1", "g2", "g3", "g4", "h2", "Synced"] {
        assert!(status.contains(shown), "{shown} not in\n{status}");
    }
    let out = tabby_ok(&lab, &files, "galera leave --cluster shop g4");
    assert!(out.contains("3 members, Primary"), "{out}");
    assert_eq!(
        lab.sh("h1", "docker inspect -f '{{.State.Running}}' g4")
            .trim(),
        "false"
    );
    wait_synced(&lab, "h3", "g3", 3);
}
