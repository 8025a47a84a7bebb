//! `tabby mysql` against real MariaDB containers on tabby networks: the
//! source article's three-host scenario (`scripts/quickstart seed`), rows
//! that replicate, the exposed master, idempotent bootstrap, a late
//! replica seeded after the master's binary logs were purged, promote;
//! bootstrap refusing bad members while changing nothing; and label-driven
//! bootstrap that touches only declared clusters' confirmed members.

#[path = "mysql/labels.rs"]
mod labels;
#[path = "mysql/read_lock.rs"]
mod read_lock;
mod support;

use std::time::Duration;

use support::{Lab, eventually, root, secret, stderr, stdout};

const PASSWORD: &str = "demo-pw-4711";

fn count(lab: &Lab, host: &str, container: &str, table: &str) -> Option<u64> {
    let out = lab.sql_output(
        host,
        container,
        PASSWORD,
        &format!("SELECT COUNT(*) FROM {table}"),
    );
    stdout(&out).trim().parse().ok()
}

fn wait_count(lab: &Lab, host: &str, container: &str, table: &str, rows: u64) {
    eventually(
        Duration::from_secs(30),
        &format!("{rows} rows in {table} on {container}"),
        || (count(lab, host, container, table) == Some(rows)).then_some(()),
    );
}

#[test]
fn the_article_scenario_replicates_exposes_bootstraps_twice_seeds_and_promotes() {
    let lab = Lab::unstarted();
    let state = tempfile::tempdir().unwrap();
    let out = lab
        .command_env(&root().join("scripts/quickstart"))
        .arg("seed")
        .env("TABBY_QUICKSTART_DIR", state.path())
        .env("TABBY_DEMO_ROOT_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    let printed = stdout(&out);
    assert!(
        out.status.success(),
        "quickstart seed: {printed}{}",
        stderr(&out)
    );
    for shown in [
        "192.168.0.50/32",
        "192.168.0.51/32",
        "192.168.0.52/32",
        "allow from tag mysql-replication",
    ] {
        assert!(printed.contains(shown), "{shown} not in:\n{printed}");
    }
    assert!(!printed.contains(PASSWORD) && !stderr(&out).contains(PASSWORD));
    let pw = state.path().join("seed/root-password");
    let tabby_mysql = |args: &str| {
        lab.sh(
            "h1",
            &format!("tabby mysql {args} --root-password-file {}", pw.display()),
        )
    };

    // 1,000 rows written on the master reach both replicas, across hosts.
    lab.sql(
        "h1",
        "mysql-master",
        PASSWORD,
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32)); \
         INSERT INTO app.t SELECT seq, CONCAT('v', seq) FROM app.seq_1_to_1000",
    );
    wait_count(&lab, "h2", "mysql-slave1", "app.t", 1000);
    wait_count(&lab, "h3", "mysql-slave2", "app.t", 1000);

    // The master answers on h1's address from outside; the replicas' hosts
    // expose nothing.
    let greeting = lab
        .client_reads("198.18.0.11", 3306)
        .expect("master reachable via h1:3306");
    assert!(greeting.contains("MariaDB"), "{greeting}");
    assert_eq!(lab.client_reads("198.18.0.12", 3306), None);
    assert_eq!(lab.client_reads("198.18.0.13", 3306), None);

    // Twice: nothing changes, one replication user.
    let again = tabby_mysql(
        "bootstrap --cluster mysql-replication --master mysql-master --replica mysql-slave1 --replica mysql-slave2",
    );
    assert_eq!(
        again.matches("already replicating, unchanged").count(),
        2,
        "{again}"
    );
    assert_eq!(
        lab.sql(
            "h1",
            "mysql-master",
            PASSWORD,
            "SELECT COUNT(*), MIN(host) FROM mysql.user WHERE user = 'repl'"
        ),
        "1\t192.168.%"
    );

    // A replica joining after 10,000 rows, with the master's first binary
    // log purged (replaying from the start is impossible), is seeded.
    lab.sql(
        "h1",
        "mysql-master",
        PASSWORD,
        "INSERT INTO app.t SELECT seq, CONCAT('v', seq) FROM app.seq_1001_to_11000",
    );
    eventually(
        Duration::from_secs(30),
        "the first binary log purged",
        || {
            lab.sql("h1", "mysql-master", PASSWORD, "FLUSH BINARY LOGS");
            let logs = lab.sql(
                "h1",
                "mysql-master",
                PASSWORD,
                "PURGE BINARY LOGS BEFORE NOW() + INTERVAL 1 DAY; SHOW BINARY LOGS",
            );
            (!logs.contains("mysqld-bin.000001")).then_some(())
        },
    );
    let env = state.path().join("seed/mariadb.env");
    lab.sh("h3", &format!(
        "docker run -d --name mysql-slave3 --net mysql-net --env-file {} tabby/mariadb --log-bin --log-slave-updates --server-id=103",
        env.display()
    ));
    let seeded = tabby_mysql(
        "bootstrap --cluster mysql-replication --master mysql-master --replica mysql-slave1 --replica mysql-slave2 --replica mysql-slave3 --wait 120",
    );
    assert!(
        seeded.contains("mysql-slave3") && seeded.contains("seeded (11001 rows"),
        "{seeded}"
    );
    lab.sql(
        "h1",
        "mysql-master",
        PASSWORD,
        "INSERT INTO app.t VALUES (11001, 'after the seed')",
    );
    wait_count(&lab, "h3", "mysql-slave3", "app.t", 11001);

    // Promote slave1: writes there reach the old master and the others.
    let promoted = tabby_mysql("promote mysql-slave1");
    assert!(
        promoted.contains("mysql-slave1 (192.168.0.51 on h2) is the master"),
        "{promoted}"
    );
    lab.sql(
        "h2",
        "mysql-slave1",
        PASSWORD,
        "INSERT INTO app.t VALUES (11002, 'on the new master')",
    );
    for (host, container) in [
        ("h1", "mysql-master"),
        ("h3", "mysql-slave2"),
        ("h3", "mysql-slave3"),
    ] {
        wait_count(&lab, host, container, "app.t", 11002);
    }
    let status = tabby_mysql("status -o json");
    let members: serde_json::Value = serde_json::from_str(&status).unwrap();
    let roles: Vec<(String, String, String)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let m = &m["member"];
            (
                m["name"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap_or("?").to_string(),
                m["replica"]["sql_running"]
                    .as_str()
                    .unwrap_or("-")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("mysql-slave1".into(), "master".into(), "-".into()),
            ("mysql-master".into(), "replica".into(), "Yes".into()),
            ("mysql-slave2".into(), "replica".into(), "Yes".into()),
            ("mysql-slave3".into(), "replica".into(), "Yes".into()),
        ]
    );
    // No password in any agent log.
    for host in ["h1", "h2", "h3"] {
        assert!(!lab.agent_log(host).contains(PASSWORD));
    }
}

#[test]
fn bootstrap_refuses_bad_members_with_clear_errors_and_changes_nothing() {
    let lab = Lab::up(1);
    lab.import_image("mariadb", &["h1"]);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        secret(&path, text);
        path
    };
    let pw = write("root-password", &format!("{PASSWORD}\n"));
    let wrong = write("wrong-password", "not-the-password\n");
    let env = write("mariadb.env", &format!("MYSQL_ROOT_PASSWORD={PASSWORD}\n"));
    lab.sh("h1", "tabby network create db --subnet 198.18.64.0/20");
    for (name, args) in [
        ("primary", "--log-bin --server-id=1"),
        ("dup", "--log-bin --server-id=1"),
        ("nobin", "--server-id=3"),
        ("good", "--log-bin --server-id=4"),
    ] {
        lab.sh(
            "h1",
            &format!(
                "docker run -d --name {name} --net db --env-file {} tabby/mariadb {args}",
                env.display()
            ),
        );
    }
    eventually(
        Duration::from_secs(180),
        "four servers to accept connections",
        || {
            lab.try_sh(
                "h1",
                &format!(
                    "tabby mysql status primary dup nobin good --root-password-file {}",
                    pw.display()
                ),
            )
            .then_some(())
        },
    );
    let bootstrap = |replicas: &str, password: &std::path::Path| {
        let out = lab.run(
            "h1",
            &[
                "sh",
                "-c",
                &format!(
                    "tabby mysql bootstrap --master primary {replicas} --root-password-file {}",
                    password.display()
                ),
            ],
        );
        (
            out.status.success(),
            format!("{}{}", stdout(&out), stderr(&out)),
        )
    };
    let (ok, message) = bootstrap("--replica good --replica dup", &pw);
    assert!(!ok);
    assert!(
        message.contains("dup (198.18.")
            && message.contains("server_id 1 is also the server_id of primary"),
        "{message}"
    );
    let (ok, message) = bootstrap("--replica good --replica nobin", &pw);
    assert!(!ok);
    assert!(
        message.contains("nobin (198.18.")
            && message.contains("log_bin is OFF")
            && message.contains("--log-bin"),
        "{message}"
    );
    let (ok, message) = bootstrap("--replica good", &wrong);
    assert!(!ok);
    assert!(
        message.contains("primary (198.18.")
            && message.contains("Access denied")
            && message.contains("root password file"),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");
    // An address of the pool where no server listens.
    let (ok, message) = bootstrap("--replica good --replica 198.18.79.250", &pw);
    assert!(!ok);
    assert!(
        message.contains("198.18.79.250: cannot connect"),
        "{message}"
    );
    // None of the failures touched anyone.
    assert_eq!(
        lab.sql(
            "h1",
            "primary",
            PASSWORD,
            "SELECT COUNT(*) FROM mysql.user WHERE user = 'repl'"
        ),
        "0"
    );
    assert_eq!(lab.sql("h1", "good", PASSWORD, "SHOW SLAVE STATUS"), "");
    assert_eq!(
        lab.sql("h1", "primary", PASSWORD, "SHOW DATABASES LIKE 'tabby'"),
        ""
    );
    read_lock::a_held_table_bounds_the_read_lock(&lab, ("primary", "good"), PASSWORD, || {
        bootstrap("--replica good", &pw)
    });
    // The same members, minus the bad ones, bootstrap fine.
    let (ok, message) = bootstrap("--replica good", &pw);
    assert!(ok, "{message}");
    assert!(message.contains("Verified"), "{message}");
    // The master gone: promote refuses to guess, --force promotes.
    lab.sh("h1", "docker rm -f primary");
    let promote = |force: &str| {
        let out = lab.run(
            "h1",
            &[
                "sh",
                "-c",
                &format!(
                    "tabby mysql promote good {force} --root-password-file {}",
                    pw.display()
                ),
            ],
        );
        (
            out.status.success(),
            format!("{}{}", stdout(&out), stderr(&out)),
        )
    };
    let (ok, message) = promote("");
    assert!(!ok);
    assert!(
        message.contains("the master is unreachable") && message.contains("--force"),
        "{message}"
    );
    assert_eq!(lab.sql("h1", "good", PASSWORD, "SELECT @@read_only, COUNT(*) > 0 FROM information_schema.PROCESSLIST WHERE COMMAND = 'Slave_IO'"), "0\t1");
    let (ok, message) = promote("--force");
    assert!(ok, "{message}");
    assert!(
        message.contains("is the master (was primary)")
            && message.contains("Skipped (unreachable): primary"),
        "{message}"
    );
    assert_eq!(lab.sql("h1", "good", PASSWORD, "SHOW SLAVE STATUS"), "");
    lab.sql("h1", "good", PASSWORD, "CREATE DATABASE after_failover");

    let id = lab.sh("h1", "tabby mysql server-id good");
    let ip = lab.container_ip("h1", "good");
    assert_eq!(
        id.trim().parse::<u32>().unwrap(),
        u32::from(ip.parse::<std::net::Ipv4Addr>().unwrap())
    );
}
