//! The snapshot's global read lock is bounded: a long write running on
//! the master makes bootstrap fail with the reason, instead of a waiting
//! FLUSH TABLES WITH READ LOCK stalling every other write behind it.

use std::process::Stdio;
use std::time::Duration;

use super::support::{Lab, eventually};

/// A write that runs for two minutes: FLUSH TABLES WITH READ LOCK waits
/// for running writes (a running SELECT does not hold it up on MariaDB).
const BLOCKER: &str = "UPDATE locked.t SET id = id + 0 WHERE SLEEP(120) = 0";

/// Kills the blocking statement's client when dropped, also on failure.
struct Blocker(std::process::Child);

impl Drop for Blocker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// With a long statement running on `master`, bootstrapping `replica`
/// (which needs a seed, so a read lock) fails within the bound, naming
/// lock_wait_timeout; once the statement is gone the caller goes on.
pub fn a_held_table_bounds_the_read_lock(
    lab: &Lab,
    (master, replica): (&str, &str),
    password: &str,
    bootstrap: impl Fn() -> (bool, String),
) {
    lab.sql(
        "h1",
        master,
        password,
        "CREATE DATABASE locked; CREATE TABLE locked.t (id INT PRIMARY KEY); \
         INSERT INTO locked.t VALUES (1)",
    );
    // The password reaches the client through the environment (`-e NAME`
    // copies it from docker's own), never a command line: another test
    // reads every process's command line for it.
    let child = lab
        .command(&[
            "exec",
            "h1",
            "docker",
            "exec",
            "-e",
            "MYSQL_PWD",
            master,
            "mariadb",
            "-uroot",
            "-e",
            BLOCKER,
        ])
        .env("MYSQL_PWD", password)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scripts/lab runs");
    let _blocker = Blocker(child);
    let running =
        format!("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = '{BLOCKER}'");
    eventually(Duration::from_secs(30), "the blocking statement", || {
        (lab.sql("h1", master, password, &running) == "1").then_some(())
    });

    let started = std::time::Instant::now();
    let (ok, message) = bootstrap();
    assert!(!ok, "bootstrap under a held table: {message}");
    assert!(
        message.contains("FLUSH TABLES WITH READ LOCK was not granted within 10 s")
            && message.contains("lock_wait_timeout"),
        "{message}"
    );
    // Bounded by the lock's timeout, not by the 120 s statement.
    assert!(started.elapsed() < Duration::from_secs(60), "{message}");
    // The replica was left alone.
    assert_eq!(lab.sql("h1", replica, password, "SHOW SLAVE STATUS"), "");

    let kill = format!(
        "SELECT CONCAT('KILL ', ID, ';') FROM information_schema.PROCESSLIST WHERE INFO = '{BLOCKER}'"
    );
    let statement = lab.sql("h1", master, password, &kill);
    lab.sql("h1", master, password, &statement);
}
