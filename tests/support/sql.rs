//! SQL inside the lab's MariaDB containers.

use std::process::Output;

use std::time::Duration;

use super::{Lab, eventually, stderr, stdout};

impl Lab {
    /// Runs SQL as root inside a MariaDB container, whatever the outcome.
    /// The password goes through the environment, never a command line:
    /// tests check that no process list shows it.
    pub fn sql_output(&self, host: &str, container: &str, password: &str, sql: &str) -> Output {
        self.command(&[
            "exec",
            host,
            "docker",
            "exec",
            "-e",
            "MYSQL_PWD",
            container,
            "mariadb",
            "-uroot",
            "-N",
            "-B",
            "-e",
            sql,
        ])
        .env("MYSQL_PWD", password)
        .output()
        .expect("scripts/lab runs")
    }

    /// Runs SQL as root inside a MariaDB container; tab-separated rows.
    pub fn sql(&self, host: &str, container: &str, password: &str, sql: &str) -> String {
        let out = self.sql_output(host, container, password, sql);
        assert!(
            out.status.success(),
            "SQL on {container}: {sql}: {}",
            stderr(&out)
        );
        stdout(&out).trim().to_string()
    }

    /// Waits (up to 3 minutes: a first start initialises the data
    /// directory) until a MariaDB container answers SQL as root.
    pub fn wait_answering(&self, host: &str, container: &str, password: &str) {
        eventually(
            Duration::from_secs(180),
            &format!("{container} to answer"),
            || {
                self.sql_output(host, container, password, "SELECT 1")
                    .status
                    .success()
                    .then_some(())
            },
        );
    }
}
