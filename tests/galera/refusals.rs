//! Bootstrap refuses what Galera cannot run on, naming the container and
//! the fix, and changes nothing; members of different profiles are
//! refused with the rules that make them work.

use super::support::{secret, stderr};
use super::{GALERA_ARGS, PASSWORD, lab, run_member, status_var, tabby, tabby_ok};

#[test]
fn bad_members_are_refused_by_name_and_nothing_changes() {
    let (lab, files) = lab();
    run_member(&lab, &files, "h1", "ok1", GALERA_ARGS);
    run_member(&lab, &files, "h2", "plain2", "");
    run_member(
        &lab,
        &files,
        "h3",
        "mixed3",
        // MariaDB refuses MIXED with wsrep on, so this member has it off.
        "--wsrep-on=OFF --wsrep-provider=/usr/lib/galera/libgalera_smm.so \
         --binlog-format=MIXED --innodb-autoinc-lock-mode=2",
    );
    let started = lab.sh("h1", "docker inspect -f '{{.State.StartedAt}}' ok1");
    let wrong = lab.dir().join("wrong-password");
    secret(&wrong, "not-the-password\n");
    let cases = [
        (
            "--member ok1 --member plain2",
            files.password.clone(),
            vec![
                "plain2",
                "--wsrep-provider=/usr/lib/galera/libgalera_smm.so",
            ],
        ),
        (
            "--member ok1 --member mixed3",
            files.password.clone(),
            vec!["mixed3", "binlog_format is MIXED", "--binlog-format=ROW"],
        ),
        (
            "--member mixed3 --member ok1",
            wrong.clone(),
            vec!["mixed3", "Access denied", "check the root password file"],
        ),
    ];
    for (members, password, expected) in cases {
        let out = lab.run(
            "h1",
            &[
                "sh",
                "-c",
                &format!(
                    "tabby mysql galera bootstrap --cluster bad {members} --root-password-file {}",
                    password.display()
                ),
            ],
        );
        assert!(!out.status.success(), "{members} was accepted");
        let err = stderr(&out);
        for text in expected {
            assert!(err.contains(text), "{text:?} not in: {err}");
        }
        assert!(!err.contains(PASSWORD));
    }
    // Nothing recorded, nothing restarted, and the good member still runs
    // on its own.
    let keys = lab.sh(
        "h1",
        "ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:2379 get /tabby/galera --prefix --keys-only",
    );
    assert!(!keys.contains("/bad"), "{keys}");
    assert_eq!(
        lab.sh("h1", "docker inspect -f '{{.State.StartedAt}}' ok1"),
        started
    );
    assert_eq!(
        status_var(&lab, "h1", "ok1", "WSREP_CLUSTER_STATUS").as_deref(),
        Some("non-Primary")
    );
    assert!(lab.sql("h1", "ok1", PASSWORD, "SELECT 1") == "1");
}

#[test]
fn members_in_different_profiles_are_refused_with_the_rules_that_work() {
    let (lab, files) = lab();
    lab.sh("h1", "tabby network create g1b --subnet 198.19.48.0/20");
    lab.sh(
        "h1",
        "tabby profile g1b rule add inbound allow tcp from cidr 198.18.0.0/24 to ports 3306",
    );
    run_member(&lab, &files, "h2", "pa", GALERA_ARGS);
    lab.sh(
        "h3",
        &format!(
            "docker run -d --name pb --net g1b --env-file {} tabby/mariadb {GALERA_ARGS}",
            files.env.display()
        ),
    );
    lab.wait_answering("h3", "pb", PASSWORD);
    let bootstrap = "galera bootstrap --cluster xp --member pa --member pb";
    let out = tabby(&lab, &files, bootstrap);
    assert!(!out.status.success());
    let err = stderr(&out);
    let rules: Vec<&str> = err
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("tabby profile "))
        .collect();
    for rule in [
        "tabby profile g1b rule add inbound allow tcp from tag g1 to ports 4567,4568,4444",
        "tabby profile g1b rule add inbound allow udp from tag g1 to ports 4567",
        "tabby profile g1 rule add inbound allow tcp from tag g1b to ports 4567,4568,4444",
        "tabby profile g1 rule add inbound allow udp from tag g1b to ports 4567",
    ] {
        assert!(rules.contains(&rule), "{rule:?} not in: {err}");
    }
    // The rules it prints are the ones that make it work.
    for rule in &rules {
        lab.sh("h1", rule);
    }
    let out = tabby_ok(&lab, &files, bootstrap);
    assert!(out.contains("2 members, Primary"), "{out}");
}
