//! Label-driven bootstrap: containers labelled for a MySQL cluster are
//! bootstrapped by the agents only when the cluster is declared and each
//! member is confirmed.

use std::time::Duration;

use super::support::{Lab, eventually, stderr, stdout};
use super::{PASSWORD, secret, wait_count};

#[test]
fn labelled_containers_are_bootstrapped_only_when_declared_and_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("root-password");
    secret(&pw, &format!("{PASSWORD}\n"));
    let env = dir.path().join("mariadb.env");
    secret(&env, &format!("MYSQL_ROOT_PASSWORD={PASSWORD}\n"));
    let lab = Lab::up_with(
        2,
        &[("TABBY_MYSQL_ROOT_PASSWORD_FILE", pw.to_str().unwrap())],
    );
    lab.import_image("mariadb", &["h1", "h2"]);
    lab.sh("h1", "tabby network create db --subnet 198.18.64.0/20");
    // The master's agent on h1 talks to the replica on h2.
    lab.sh(
        "h1",
        "tabby profile db rule add inbound allow tcp from cidr 198.18.0.0/24 to ports 3306",
    );
    // A bad cluster name is refused and writes nothing.
    let before = lab.etcd_snapshot("h1");
    let out = lab.run("h1", &["tabby", "mysql", "cluster", "create", "../shop"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid MySQL cluster name"),
        "{}",
        stderr(&out)
    );
    // Agents write node status on their own, so compare keys, not revisions.
    assert_eq!(lab.etcd_snapshot("h1").0, before.0);
    assert_eq!(
        lab.sh("h1", "tabby mysql cluster show -o json").trim(),
        "[]"
    );
    // A password file others can read is refused, with the fix.
    let open = dir.path().join("open-password");
    secret(&open, &format!("{PASSWORD}\n"));
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = lab.run(
        "h1",
        &[
            "tabby",
            "mysql",
            "status",
            "x",
            "--root-password-file",
            open.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(PASSWORD));

    let run = |host: &str, name: &str, cluster: &str, role: &str, id: u32| {
        lab.sh(host, &format!(
            "docker run -d --name {name} --net db --label tabby.mysql.cluster={cluster} \
             --label tabby.mysql.role={role} --env-file {} tabby/mariadb --log-bin --server-id={id}",
            env.display()
        ));
    };
    // An undeclared labelled pair, up and answering before anything else:
    // every later pass of the agents could reach them.
    run("h1", "rogue-db1", "rogue", "master", 21);
    run("h2", "rogue-db2", "rogue", "replica", 22);
    for (host, name) in [("h1", "rogue-db1"), ("h2", "rogue-db2")] {
        lab.wait_answering(host, name, PASSWORD);
    }
    lab.sh(
        "h1",
        "tabby mysql cluster create shop --member shop-db1 --member shop-db2@h2",
    );
    run("h1", "shop-db1", "shop", "master", 11);
    run("h2", "shop-db2", "shop", "replica", 12);
    // Labelled for shop, but not a member of its declaration.
    run("h2", "shop-db3", "shop", "replica", 13);
    // Nobody runs `tabby mysql bootstrap`: the agent does, once both answer.
    let status = eventually(
        Duration::from_secs(180),
        "the agent to bootstrap shop",
        || {
            let out = lab.run(
                "h1",
                &[
                    "tabby",
                    "mysql",
                    "status",
                    "--cluster",
                    "shop",
                    "-o",
                    "json",
                ],
            );
            let text = stdout(&out);
            (out.status.success() && text.contains("\"sql_running\": \"Yes\"")).then_some(text)
        },
    );
    assert!(
        status.contains("shop-db1") && status.contains("shop-db2") && !status.contains("shop-db3"),
        "{status}"
    );
    lab.sql("h1", "shop-db1", PASSWORD,
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY); INSERT INTO shop.orders VALUES (1), (2), (3)");
    wait_count(&lab, "h2", "shop-db2", "shop.orders", 3);
    let log = lab.agent_log("h1");
    assert!(
        log.contains("bootstrapped MySQL replication from labels"),
        "{log}"
    );
    // The undeclared pair and the unconfirmed replica got nothing: no
    // replication, no seed, no canary, no replication user.
    for (host, name) in [("h2", "rogue-db2"), ("h2", "shop-db3")] {
        assert_eq!(
            lab.sql(host, name, PASSWORD, "SHOW SLAVE STATUS"),
            "",
            "{name}"
        );
        assert_eq!(
            lab.sql(
                host,
                name,
                PASSWORD,
                "SHOW DATABASES WHERE `Database` IN ('tabby', 'shop')"
            ),
            "",
            "{name}"
        );
    }
    assert_eq!(
        lab.sql(
            "h1",
            "rogue-db1",
            PASSWORD,
            "SELECT COUNT(*) FROM mysql.user WHERE user = 'repl'"
        ),
        "0"
    );
    assert_eq!(
        lab.sql("h1", "rogue-db1", PASSWORD, "SHOW DATABASES LIKE 'tabby'"),
        ""
    );
    let log2 = lab.agent_log("h2");
    for (log, name, cluster) in [
        (&log, "rogue-db1", "rogue"),
        (&log2, "rogue-db2", "rogue"),
        (&log2, "shop-db3", "shop"),
    ] {
        assert!(
            log.lines().any(|l| l.contains("left alone")
                && l.contains(name)
                && l.contains(&format!("cluster={cluster}"))),
            "{name} not reported:\n{log}"
        );
    }
    assert!(!log.contains(PASSWORD) && !log2.contains(PASSWORD));
    // The repl account and the password file never show in process lists.
    let ps = lab.sh("h1", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '");
    assert!(!ps.contains(PASSWORD));
}
