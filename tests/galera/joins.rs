//! Members that come by themselves (labels) and by mariabackup.

use std::time::Duration;

use super::support::eventually;
use super::{
    GALERA_ARGS, PASSWORD, lab, run_labelled, run_member, status_var, tabby_ok, wait_rows,
    wait_synced,
};

#[test]
fn labelled_members_form_a_cluster_only_when_declared_and_confirmed() {
    let (lab, files) = lab();
    lab.sh(
        "h1",
        "tabby mysql cluster create lbl --member l1 --member l2",
    );
    let labels = "--label tabby.mysql.cluster=lbl --label tabby.mysql.role=galera";
    // The oldest member starts the cluster; the next joins it.
    run_labelled(&lab, &files, "h2", "l1", labels, GALERA_ARGS);
    run_labelled(&lab, &files, "h3", "l2", labels, GALERA_ARGS);
    wait_synced(&lab, "h2", "l1", 2);
    wait_synced(&lab, "h3", "l2", 2);
    // A labelled container the declaration does not confirm is left alone.
    run_labelled(&lab, &files, "h1", "l3", labels, GALERA_ARGS);
    eventually(Duration::from_secs(60), "l3 to be left alone", || {
        let log = lab.agent_log("h1");
        log.lines()
            .any(|l| l.contains("left alone") && l.contains("l3"))
            .then_some(())
    });
    assert_eq!(
        status_var(&lab, "h1", "l3", "WSREP_CLUSTER_STATUS").as_deref(),
        Some("non-Primary")
    );
    assert_eq!(
        status_var(&lab, "h2", "l1", "WSREP_CLUSTER_SIZE").as_deref(),
        Some("2")
    );
    // Confirmed, it joins.
    lab.sh("h1", "tabby mysql cluster member add lbl l3");
    wait_synced(&lab, "h1", "l3", 3);
    wait_synced(&lab, "h2", "l1", 3);
}

#[test]
fn a_member_joins_by_mariabackup_state_transfer() {
    let (lab, files) = lab();
    run_member(&lab, &files, "h2", "mb1", GALERA_ARGS);
    run_member(&lab, &files, "h3", "mb2", GALERA_ARGS);
    let out = tabby_ok(
        &lab,
        &files,
        "galera bootstrap --cluster mb --sst mariabackup --member mb1 --member mb2",
    );
    assert!(out.contains("2 members, Primary"), "{out}");
    lab.sql(
        "h2",
        "mb1",
        PASSWORD,
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32)); \
         INSERT INTO app.t SELECT seq, 'before' FROM app.seq_1_to_500",
    );
    // mb3 gets the rows in its snapshot: they were written before it came.
    run_member(&lab, &files, "h1", "mb3", GALERA_ARGS);
    let out = tabby_ok(&lab, &files, "galera join --cluster mb mb3");
    assert!(out.contains("3 members, Primary"), "{out}");
    wait_rows(&lab, "h1", "mb3", 500);
    let log = lab.sh("h1", "docker logs mb3 2>&1");
    assert!(
        log.contains("wsrep_sst_mariabackup --role 'joiner'"),
        "no mariabackup SST:\n{log}"
    );
}
