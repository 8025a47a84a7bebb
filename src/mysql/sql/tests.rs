use super::*;

fn flavor(version: &str, comment: &str) -> Flavor {
    detect(version, comment).unwrap()
}

const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 50);

#[test]
fn flavors_and_versions_are_told_apart() {
    assert_eq!(
        flavor("10.11.18-MariaDB-0+deb12u1-log", "Debian 12"),
        Flavor::MariaDb {
            major: 10,
            minor: 11
        }
    );
    assert_eq!(
        flavor("5.5.5-10.6.12-MariaDB", "mariadb.org binary distribution"),
        Flavor::MariaDb {
            major: 10,
            minor: 6
        }
    );
    assert_eq!(
        flavor("8.0.36", "MySQL Community Server - GPL"),
        Flavor::MySql {
            major: 8,
            minor: 0,
            patch: 36
        }
    );
    assert!(detect("banana", "").is_err());
}

#[test]
fn mariadb_10_uses_master_use_gtid() {
    let f = flavor("10.11.18-MariaDB", "");
    assert_eq!(
        f.change_source(HOST, 3306, "repl", "pw").expose(),
        "CHANGE MASTER TO MASTER_HOST='192.168.0.50', MASTER_PORT=3306, MASTER_USER='repl', \
         MASTER_PASSWORD='pw', MASTER_USE_GTID=slave_pos"
    );
    assert_eq!(f.start_replication(), "START SLAVE");
    assert_eq!(f.replication_status(), "SHOW SLAVE STATUS");
    assert_eq!(f.status_columns().lag, "Seconds_Behind_Master");
    assert_eq!(
        f.wait_for_gtid("0-1-42", 10),
        "SELECT MASTER_GTID_WAIT('0-1-42', 10)"
    );
}

#[test]
fn mysql_5_7_uses_auto_position_without_the_public_key_option() {
    let f = flavor("5.7.44-log", "MySQL Community Server (GPL)");
    let sql = f
        .change_source(HOST, 3306, "repl", "pw")
        .expose()
        .to_string();
    assert!(
        sql.starts_with("CHANGE MASTER TO ") && sql.ends_with("MASTER_AUTO_POSITION=1"),
        "{sql}"
    );
    assert_eq!(f.start_replication(), "START SLAVE");
    assert_eq!(
        f.wait_for_gtid("uuid:1-5", 10),
        "SELECT WAIT_FOR_EXECUTED_GTID_SET('uuid:1-5', 10)"
    );
}

#[test]
fn mysql_8_0_22_has_replica_words_but_still_change_master() {
    let f = flavor("8.0.22", "MySQL Community Server - GPL");
    let sql = f
        .change_source(HOST, 3306, "repl", "pw")
        .expose()
        .to_string();
    assert!(
        sql.starts_with("CHANGE MASTER TO ") && sql.ends_with("GET_MASTER_PUBLIC_KEY=1"),
        "{sql}"
    );
    assert_eq!(f.start_replication(), "START REPLICA");
    assert_eq!(f.replication_status(), "SHOW REPLICA STATUS");
    assert_eq!(f.status_columns().io_running, "Replica_IO_Running");
}

#[test]
fn mysql_8_0_23_and_8_4_use_replication_source() {
    for version in ["8.0.23", "8.0.36", "8.4.3"] {
        let f = flavor(version, "MySQL Community Server - GPL");
        assert_eq!(
            f.change_source(HOST, 3306, "repl", "pw").expose(),
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST='192.168.0.50', SOURCE_PORT=3306, SOURCE_USER='repl', \
             SOURCE_PASSWORD='pw', SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1",
            "{version}"
        );
        assert_eq!(f.start_replication(), "START REPLICA");
        assert_eq!(f.reset_replication(), "RESET REPLICA ALL");
        assert_eq!(f.status_columns().lag, "Seconds_Behind_Source");
    }
}

#[test]
fn the_replication_user_is_limited_to_the_pool_and_idempotent() {
    let pool: Ipv4Net = "192.168.0.0/16".parse().unwrap();
    let [create, grant] = create_replication_user("repl", &user_host(&pool), "s'ecret");
    assert_eq!(
        create.expose(),
        "CREATE USER IF NOT EXISTS 'repl'@'192.168.%' IDENTIFIED BY 's''ecret'"
    );
    assert_eq!(
        grant.expose(),
        "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'repl'@'192.168.%'"
    );
    assert_eq!(user_host(&"10.100.0.0/16".parse().unwrap()), "10.100.%");
    assert_eq!(
        user_host(&"198.18.64.0/20".parse().unwrap()),
        "198.18.64.0/255.255.240.0"
    );
}

#[test]
fn passwords_never_show_in_display_or_debug() {
    let f = flavor("10.11.18-MariaDB", "");
    let stmt = f.change_source(HOST, 3306, "repl", "hunter2");
    assert!(stmt.expose().contains("hunter2"));
    for shown in [stmt.to_string(), format!("{stmt:?}")] {
        assert!(
            !shown.contains("hunter2") && shown.contains("MASTER_PASSWORD='***'"),
            "{shown}"
        );
    }
    let [create, _] = create_replication_user("repl", "10.%", "hunter2");
    assert!(!create.to_string().contains("hunter2"));
}

#[test]
fn server_ids_come_from_addresses_and_are_never_zero() {
    assert_eq!(server_id("192.168.0.50".parse().unwrap()), 3232235570);
    assert_ne!(
        server_id("192.168.0.50".parse().unwrap()),
        server_id("192.168.0.51".parse().unwrap())
    );
    assert_eq!(server_id(Ipv4Addr::UNSPECIFIED), 1);
}

#[test]
fn a_seeded_replica_starts_at_the_copy_position_per_flavor() {
    let mariadb = flavor("10.11.18-MariaDB", "");
    assert_eq!(
        mariadb.start_replica_at("0-1-42"),
        ["SET GLOBAL gtid_slave_pos = '0-1-42'"]
    );
    assert_eq!(mariadb.snapshot_position(), "SELECT @@gtid_binlog_pos");
    assert_eq!(
        mariadb.adopt_own_history(),
        Some("SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos")
    );
    let gtid = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5";
    for version in ["5.7.44", "8.0.22", "8.0.36"] {
        let f = flavor(version, "MySQL Community Server");
        assert_eq!(
            f.start_replica_at(gtid),
            [
                "RESET MASTER".to_string(),
                format!("SET GLOBAL gtid_purged = '{gtid}'")
            ],
            "{version}"
        );
        assert_eq!(f.snapshot_position(), "SELECT @@gtid_executed");
        assert_eq!(f.adopt_own_history(), None);
    }
    // 8.4 removed RESET MASTER.
    assert_eq!(
        flavor("8.4.3", "MySQL Community Server").start_replica_at(gtid)[0],
        "RESET BINARY LOGS AND GTIDS"
    );
}

#[test]
fn status_columns_are_read_by_their_names_per_version() {
    let old = flavor("8.0.21", "MySQL Community Server").status_columns();
    assert_eq!(
        (
            old.source_host,
            old.source_port,
            old.source_user,
            old.sql_running
        ),
        (
            "Master_Host",
            "Master_Port",
            "Master_User",
            "Slave_SQL_Running"
        )
    );
    let new = flavor("8.0.22", "MySQL Community Server").status_columns();
    assert_eq!(
        (
            new.source_host,
            new.source_port,
            new.source_user,
            new.sql_running
        ),
        (
            "Source_Host",
            "Source_Port",
            "Source_User",
            "Replica_SQL_Running"
        )
    );
    let mariadb = flavor("10.11.18-MariaDB", "").status_columns();
    assert_eq!(mariadb.source_host, "Master_Host");
    assert_eq!(
        flavor("8.0.22", "MySQL").reset_replication(),
        "RESET REPLICA ALL"
    );
    assert_eq!(
        flavor("5.7.44", "MySQL").reset_replication(),
        "RESET SLAVE ALL"
    );
}
