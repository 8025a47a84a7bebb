//! Where a server stands: its replication threads, its source, its lag
//! and GTID position. Columns are read by name: `Slave_*`/`Master_*` on
//! MariaDB and MySQL before 8.0.22, `Replica_*`/`Source_*` after.

use std::net::Ipv4Addr;

use mysql_async::Row;
use mysql_async::prelude::FromValue;
use serde::Serialize;

use super::{Member, Result};

/// One row of `SHOW SLAVE STATUS` / `SHOW REPLICA STATUS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaStatus {
    pub source_host: String,
    pub source_port: u16,
    pub source_user: String,
    pub io_running: String,
    pub sql_running: String,
    pub lag: Option<u64>,
    pub last_io_errno: u32,
    pub last_io_error: String,
    pub last_sql_errno: u32,
    pub last_sql_error: String,
}

impl ReplicaStatus {
    pub fn healthy(&self) -> bool {
        self.io_running == "Yes"
            && self.sql_running == "Yes"
            && self.last_io_errno == 0
            && self.last_sql_errno == 0
            && self.lag.is_some()
    }

    pub fn replicates_from(&self, ip: Ipv4Addr) -> bool {
        self.source_host == ip.to_string()
    }

    /// The last error, if a thread has one.
    pub fn last_error(&self) -> Option<String> {
        if self.last_io_errno != 0 {
            Some(format!("IO {}: {}", self.last_io_errno, self.last_io_error))
        } else if self.last_sql_errno != 0 {
            Some(format!(
                "SQL {}: {}",
                self.last_sql_errno, self.last_sql_error
            ))
        } else {
            None
        }
    }

    pub fn describe(&self) -> String {
        let mut text = format!(
            "IO thread {}, SQL thread {}",
            self.io_running, self.sql_running
        );
        if let Some(error) = self.last_error() {
            text.push_str(&format!(", last error {error}"));
        }
        text
    }
}

fn column<T: FromValue>(row: &Row, name: &str) -> Option<T> {
    row.get_opt::<T, &str>(name).and_then(|v| v.ok())
}

/// The replication state of a server, or None if it replicates from no one.
pub async fn replica_status(member: &mut Member) -> Result<Option<ReplicaStatus>> {
    let statement = member.flavor.replication_status();
    let columns = member.flavor.status_columns();
    let rows = member
        .rows("reading the replication status", statement)
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let status = ReplicaStatus {
        source_host: column(row, columns.source_host).unwrap_or_default(),
        source_port: column(row, columns.source_port).unwrap_or_default(),
        source_user: column(row, columns.source_user).unwrap_or_default(),
        io_running: column(row, columns.io_running).unwrap_or_default(),
        sql_running: column(row, columns.sql_running).unwrap_or_default(),
        lag: column::<Option<u64>>(row, columns.lag).flatten(),
        last_io_errno: column(row, "Last_IO_Errno").unwrap_or_default(),
        last_io_error: column(row, "Last_IO_Error").unwrap_or_default(),
        last_sql_errno: column(row, "Last_SQL_Errno").unwrap_or_default(),
        last_sql_error: column(row, "Last_SQL_Error").unwrap_or_default(),
    };
    // RESET SLAVE ALL leaves no row; a plain RESET SLAVE leaves an empty one.
    Ok((!status.source_host.is_empty()).then_some(status))
}

/// How many replicas stream this server's binary log now.
pub async fn connected_replicas(member: &mut Member) -> Result<u64> {
    Ok(member
        .first::<u64>(
            "counting connected replicas",
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE COMMAND IN ('Binlog Dump', 'Binlog Dump GTID')",
        )
        .await?
        .unwrap_or(0))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Replica,
    /// Replicates from no one and no one replicates from it.
    Standalone,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Replica => "replica",
            Role::Standalone => "standalone",
        })
    }
}

/// One line of `tabby mysql status`.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub name: String,
    pub host: Option<String>,
    pub address: Ipv4Addr,
    pub role: Option<Role>,
    pub replica: Option<ReplicaStatus>,
    pub gtid: Option<String>,
    pub read_only: Option<bool>,
    /// Why the member could not be read.
    pub error: Option<String>,
}

/// Reads a connected member's status.
pub async fn member_status(member: &mut Member, expected_master: bool) -> Result<MemberStatus> {
    let replica = replica_status(member).await?;
    let role = if replica.is_some() {
        Role::Replica
    } else if expected_master || connected_replicas(member).await? > 0 {
        Role::Master
    } else {
        Role::Standalone
    };
    Ok(MemberStatus {
        name: member.target.name.clone(),
        host: member.target.host.clone(),
        address: member.target.ip,
        role: Some(role),
        gtid: Some(member.gtid_position().await?),
        read_only: Some(member.settings.read_only),
        replica,
        error: None,
    })
}
