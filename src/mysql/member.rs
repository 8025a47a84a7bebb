//! One server, connected over the routed network, with the settings
//! replication depends on. Every statement's failure names the member and
//! what was being done, with passwords scrubbed from the server's message.

use std::time::Duration;

use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Conn, OptsBuilder, Row};

use super::sql::{self, Flavor, Secret};
use super::{Credentials, Error, Result, Target};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long FLUSH TABLES WITH READ LOCK may wait for running statements and
/// table locks. Unbounded (the server's default is a year), a waiting lock
/// holds back every write queued behind it for as long as a slow query runs.
pub const READ_LOCK_WAIT: Duration = Duration::from_secs(10);

/// ER_LOCK_WAIT_TIMEOUT.
const LOCK_WAIT_TIMEOUT: u16 = 1205;

/// What replication needs to know of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub version: String,
    pub server_id: u32,
    /// MySQL only: MariaDB has no server_uuid.
    pub server_uuid: Option<String>,
    pub log_bin: bool,
    /// MySQL only: `gtid_mode` and `enforce_gtid_consistency`.
    pub gtid_mode: Option<String>,
    pub enforce_gtid_consistency: Option<String>,
    pub read_only: bool,
}

pub struct Member {
    pub target: Target,
    pub flavor: Flavor,
    pub settings: Settings,
    conn: Conn,
    credentials: Credentials,
}

impl Member {
    pub async fn connect(target: &Target, credentials: &Credentials) -> Result<Member> {
        let opts = OptsBuilder::default()
            .ip_or_hostname(target.ip.to_string())
            .tcp_port(target.port)
            .user(Some(credentials.admin_user.clone()))
            .pass(Some(credentials.admin_password.expose().to_string()))
            .prefer_socket(false);
        let connecting = Conn::new(opts);
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(Error::Connect {
                    member: target.to_string(),
                    message: connect_hint(&credentials.scrub(&e.to_string())),
                });
            }
            Err(_) => {
                return Err(Error::Connect {
                    member: target.to_string(),
                    message: format!(
                        "no answer on port {} within {} s: is the server up, and does the \
                         container's profile let this host reach that port (e.g. `tabby profile P \
                         rule add inbound allow tcp from cidr <this host's address>/32 to ports {}`)?",
                        target.port,
                        CONNECT_TIMEOUT.as_secs(),
                        target.port
                    ),
                });
            }
        };
        let mut member = Member {
            target: target.clone(),
            flavor: Flavor::MariaDb { major: 0, minor: 0 },
            settings: Settings {
                version: String::new(),
                server_id: 0,
                server_uuid: None,
                log_bin: false,
                gtid_mode: None,
                enforce_gtid_consistency: None,
                read_only: false,
            },
            conn,
            credentials: credentials.clone(),
        };
        member.read_settings().await?;
        Ok(member)
    }

    async fn read_settings(&mut self) -> Result<()> {
        let (version, comment): (String, String) = self
            .first(
                "reading the server version",
                "SELECT VERSION(), @@version_comment",
            )
            .await?
            .unwrap_or_default();
        self.flavor = sql::detect(&version, &comment).map_err(|message| Error::Check {
            member: self.target.to_string(),
            message,
        })?;
        let (server_id, log_bin, read_only): (u32, u8, u8) = self
            .first(
                "reading server_id, log_bin and read_only",
                "SELECT @@server_id, @@log_bin, @@read_only",
            )
            .await?
            .unwrap_or_default();
        self.settings = Settings {
            version,
            server_id,
            server_uuid: None,
            log_bin: log_bin != 0,
            gtid_mode: None,
            enforce_gtid_consistency: None,
            read_only: read_only != 0,
        };
        if let Flavor::MySql { .. } = self.flavor {
            let (uuid, mode, enforce): (String, String, String) = self
                .first(
                    "reading server_uuid and the GTID settings",
                    "SELECT @@server_uuid, @@gtid_mode, @@enforce_gtid_consistency",
                )
                .await?
                .unwrap_or_default();
            self.settings.server_uuid = Some(uuid);
            self.settings.gtid_mode = Some(mode);
            self.settings.enforce_gtid_consistency = Some(enforce);
        }
        Ok(())
    }

    fn query_error(&self, what: &str, e: mysql_async::Error) -> Error {
        Error::Query {
            member: self.target.to_string(),
            what: what.to_string(),
            message: self.credentials.scrub(&e.to_string()),
        }
    }

    /// Runs a statement that returns no rows.
    pub async fn exec(&mut self, what: &str, statement: &str) -> Result<()> {
        let result = self.conn.query_drop(statement).await;
        result.map_err(|e| self.query_error(what, e))
    }

    /// Runs a statement that carries a password.
    pub async fn exec_secret(&mut self, what: &str, statement: &Secret) -> Result<()> {
        let result = self.conn.query_drop(statement.expose()).await;
        result.map_err(|e| self.query_error(what, e))
    }

    pub async fn first<T: FromRow + Send + 'static>(
        &mut self,
        what: &str,
        statement: &str,
    ) -> Result<Option<T>> {
        let result = self.conn.query_first(statement).await;
        result.map_err(|e| self.query_error(what, e))
    }

    pub async fn rows(&mut self, what: &str, statement: &str) -> Result<Vec<Row>> {
        let result = self.conn.query(statement).await;
        result.map_err(|e| self.query_error(what, e))
    }

    /// The connection itself, for streaming (seeding). Errors from it must
    /// go through `query_error`.
    pub(super) fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    pub(super) fn error(&self, what: &str, e: mysql_async::Error) -> Error {
        self.query_error(what, e)
    }

    /// The executed GTID position.
    pub async fn gtid_position(&mut self) -> Result<String> {
        let statement = self.flavor.gtid_position();
        Ok(self
            .first::<Option<String>>("reading the GTID position", statement)
            .await?
            .flatten()
            .unwrap_or_default())
    }

    /// Waits until this server has applied `gtid`; false on timeout.
    pub async fn wait_for_gtid(&mut self, gtid: &str, timeout: Duration) -> Result<bool> {
        if gtid.is_empty() {
            return Ok(true);
        }
        let statement = self.flavor.wait_for_gtid(gtid, timeout.as_secs() as u32);
        let answer: Option<Option<i64>> = self
            .first("waiting for the GTID position", &statement)
            .await?;
        Ok(answer.flatten() == Some(0))
    }

    /// FLUSH TABLES WITH READ LOCK, waiting at most `READ_LOCK_WAIT`.
    pub async fn global_read_lock(&mut self, what: &str) -> Result<()> {
        let bound = format!(
            "SET SESSION lock_wait_timeout = {}",
            READ_LOCK_WAIT.as_secs()
        );
        self.exec(what, &bound).await?;
        let result = self.conn.query_drop("FLUSH TABLES WITH READ LOCK").await;
        // The bound is for the lock only: later statements keep the default.
        let reset = self
            .exec(what, "SET SESSION lock_wait_timeout = DEFAULT")
            .await;
        match result {
            Err(mysql_async::Error::Server(e)) if e.code == LOCK_WAIT_TIMEOUT => {
                Err(Error::Check {
                    member: self.target.to_string(),
                    message: format!(
                        "{what}: FLUSH TABLES WITH READ LOCK was not granted within {} s \
                         (lock_wait_timeout): a long-running statement or LOCK TABLES holds \
                         tables; retry once it is done",
                        READ_LOCK_WAIT.as_secs()
                    ),
                })
            }
            Err(e) => Err(self.query_error(what, e)),
            Ok(()) => reset,
        }
    }

    pub async fn disconnect(self) {
        let _ = self.conn.disconnect().await;
    }
}

/// The server's refusal, with what to do about it.
fn connect_hint(message: &str) -> String {
    if message.contains("Access denied") {
        format!("{message}: check the root password file")
    } else {
        message.to_string()
    }
}
