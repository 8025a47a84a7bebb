//! The SQL that sets up replication, by server flavor and version: MariaDB
//! 10.x, MySQL 5.7, 8.0 before and after 8.0.22/8.0.23, and 8.4 (which
//! removed the `*SLAVE*` and `CHANGE MASTER` forms). Statements that carry
//! a password are `Secret`: their Display never shows it.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb { major: u32, minor: u32 },
    MySql { major: u32, minor: u32, patch: u32 },
}

/// Reads `SELECT VERSION(), @@version_comment`.
pub fn detect(version: &str, comment: &str) -> Result<Flavor, String> {
    let is_mariadb = version.to_ascii_lowercase().contains("mariadb")
        || comment.to_ascii_lowercase().contains("mariadb");
    // Older MariaDB servers prefix their version with "5.5.5-" for old clients.
    let digits = if is_mariadb {
        version.trim_start_matches("5.5.5-")
    } else {
        version
    };
    let numbers: Vec<u32> = digits
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| {
            n.parse()
                .map_err(|_| format!("cannot read server version {version:?}"))
        })
        .collect::<Result<_, _>>()?;
    let [major, minor, patch] = numbers[..] else {
        return Err(format!("cannot read server version {version:?}"));
    };
    Ok(if is_mariadb {
        Flavor::MariaDb { major, minor }
    } else {
        Flavor::MySql {
            major,
            minor,
            patch,
        }
    })
}

impl Flavor {
    fn mysql_at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        matches!(*self, Flavor::MySql { major: a, minor: b, patch: c } if (a, b, c) >= (major, minor, patch))
    }

    /// `START REPLICA` and `SHOW REPLICA STATUS` (MySQL 8.0.22+).
    fn replica_words(&self) -> bool {
        self.mysql_at_least(8, 0, 22)
    }

    /// `CHANGE REPLICATION SOURCE TO` (MySQL 8.0.23+).
    fn source_words(&self) -> bool {
        self.mysql_at_least(8, 0, 23)
    }

    pub fn start_replication(&self) -> &'static str {
        if self.replica_words() {
            "START REPLICA"
        } else {
            "START SLAVE"
        }
    }

    pub fn stop_replication(&self) -> &'static str {
        if self.replica_words() {
            "STOP REPLICA"
        } else {
            "STOP SLAVE"
        }
    }

    pub fn reset_replication(&self) -> &'static str {
        if self.replica_words() {
            "RESET REPLICA ALL"
        } else {
            "RESET SLAVE ALL"
        }
    }

    pub fn replication_status(&self) -> &'static str {
        if self.replica_words() {
            "SHOW REPLICA STATUS"
        } else {
            "SHOW SLAVE STATUS"
        }
    }

    /// Column names of the status row: read by name, they differ.
    pub fn status_columns(&self) -> StatusColumns {
        if self.replica_words() {
            StatusColumns {
                source_host: "Source_Host",
                source_port: "Source_Port",
                source_user: "Source_User",
                io_running: "Replica_IO_Running",
                sql_running: "Replica_SQL_Running",
                lag: "Seconds_Behind_Source",
            }
        } else {
            StatusColumns {
                source_host: "Master_Host",
                source_port: "Master_Port",
                source_user: "Master_User",
                io_running: "Slave_IO_Running",
                sql_running: "Slave_SQL_Running",
                lag: "Seconds_Behind_Master",
            }
        }
    }

    /// Points a replica at its source with GTID auto-positioning.
    pub fn change_source(&self, host: Ipv4Addr, port: u16, user: &str, password: &str) -> Secret {
        let (user, literal) = (quote(user), quote(password));
        let password = &literal;
        let text = match self {
            Flavor::MariaDb { .. } => format!(
                "CHANGE MASTER TO MASTER_HOST='{host}', MASTER_PORT={port}, MASTER_USER={user}, \
                 MASTER_PASSWORD={password}, MASTER_USE_GTID=slave_pos"
            ),
            f if f.source_words() => format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST='{host}', SOURCE_PORT={port}, SOURCE_USER={user}, \
                 SOURCE_PASSWORD={password}, SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1"
            ),
            // caching_sha2_password without TLS needs the source's key (8.0.4+).
            f if f.mysql_at_least(8, 0, 4) => format!(
                "CHANGE MASTER TO MASTER_HOST='{host}', MASTER_PORT={port}, MASTER_USER={user}, \
                 MASTER_PASSWORD={password}, MASTER_AUTO_POSITION=1, GET_MASTER_PUBLIC_KEY=1"
            ),
            _ => format!(
                "CHANGE MASTER TO MASTER_HOST='{host}', MASTER_PORT={port}, MASTER_USER={user}, \
                 MASTER_PASSWORD={password}, MASTER_AUTO_POSITION=1"
            ),
        };
        Secret::new(text, &literal)
    }

    /// Waits until a GTID position is applied; answers 0 (MariaDB) or 0
    /// (MySQL) on success, -1 / 1 on timeout.
    pub fn wait_for_gtid(&self, gtid: &str, timeout_secs: u32) -> String {
        match self {
            Flavor::MariaDb { .. } => {
                format!("SELECT MASTER_GTID_WAIT({}, {timeout_secs})", quote(gtid))
            }
            Flavor::MySql { .. } => format!(
                "SELECT WAIT_FOR_EXECUTED_GTID_SET({}, {timeout_secs})",
                quote(gtid)
            ),
        }
    }

    /// Makes a freshly seeded replica start after `gtid`, the position its
    /// copy was taken at. MySQL can only set `gtid_purged` on a server with
    /// no GTID history, hence the reset first (8.4 renamed `RESET MASTER`).
    pub fn start_replica_at(&self, gtid: &str) -> Vec<String> {
        match self {
            Flavor::MariaDb { .. } => vec![format!("SET GLOBAL gtid_slave_pos = {}", quote(gtid))],
            f => vec![
                if f.mysql_at_least(8, 4, 0) {
                    "RESET BINARY LOGS AND GTIDS".to_string()
                } else {
                    "RESET MASTER".to_string()
                },
                format!("SET GLOBAL gtid_purged = {}", quote(gtid)),
            ],
        }
    }

    /// A former master about to replicate from a new one: MariaDB's
    /// replica position must first take in what it wrote itself. MySQL's
    /// auto-positioning uses gtid_executed and needs nothing.
    pub fn adopt_own_history(&self) -> Option<&'static str> {
        match self {
            Flavor::MariaDb { .. } => Some("SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos"),
            Flavor::MySql { .. } => None,
        }
    }

    /// The position a snapshot taken under a global read lock is at.
    pub fn snapshot_position(&self) -> &'static str {
        match self {
            Flavor::MariaDb { .. } => "SELECT @@gtid_binlog_pos",
            Flavor::MySql { .. } => "SELECT @@gtid_executed",
        }
    }

    pub fn family(&self) -> &'static str {
        match self {
            Flavor::MariaDb { .. } => "MariaDB",
            Flavor::MySql { .. } => "MySQL",
        }
    }

    /// The executed GTID position of a server.
    pub fn gtid_position(&self) -> &'static str {
        match self {
            Flavor::MariaDb { .. } => "SELECT @@gtid_current_pos",
            Flavor::MySql { .. } => "SELECT @@gtid_executed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusColumns {
    pub source_host: &'static str,
    pub source_port: &'static str,
    pub source_user: &'static str,
    pub io_running: &'static str,
    pub sql_running: &'static str,
    pub lag: &'static str,
}

/// A statement that carries a password. Display and Debug show it with the
/// password as `'***'`; only `expose` gives the text to send to the server.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    text: String,
    /// The quoted literal to hide.
    hidden: Option<String>,
}

impl Secret {
    fn new(text: String, password_literal: &str) -> Self {
        Secret {
            text,
            hidden: Some(password_literal.to_string()),
        }
    }

    fn plain(text: String) -> Self {
        Secret { text, hidden: None }
    }

    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hidden {
            Some(literal) => f.write_str(&self.text.replace(literal.as_str(), "'***'")),
            None => f.write_str(&self.text),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({self})")
    }
}

/// A string literal, quotes and backslashes escaped.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// The host part of the replication user: the network's pool, as the
/// source article's `10.100.%` for octet-aligned pools, else the
/// address/netmask form both servers accept.
pub fn user_host(pool: &Ipv4Net) -> String {
    let octets = pool.network().octets();
    match pool.prefix_len() {
        0 => "%".to_string(),
        8 => format!("{}.%", octets[0]),
        16 => format!("{}.{}.%", octets[0], octets[1]),
        24 => format!("{}.{}.{}.%", octets[0], octets[1], octets[2]),
        _ => format!("{}/{}", pool.network(), pool.netmask()),
    }
}

/// The replication user, created on the source only, idempotently, for
/// one host pattern (`user_host` of the network's pool).
pub fn create_replication_user(user: &str, host: &str, password: &str) -> [Secret; 2] {
    let account = format!("{}@{}", quote(user), quote(host));
    let literal = quote(password);
    [
        Secret::new(
            format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {literal}"),
            &literal,
        ),
        Secret::plain(format!(
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {account}"
        )),
    ]
}

/// A default server_id from the container's address: unique within a pool
/// and never 0.
pub fn server_id(ip: Ipv4Addr) -> u32 {
    u32::from(ip).max(1)
}

#[cfg(test)]
mod tests;
