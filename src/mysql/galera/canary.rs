//! The canary: a row written on one member must be read on every other.
//! Galera applies write-sets asynchronously after certification, so each
//! read waits for causality (`wsrep_sync_wait`) instead of polling.

use super::cluster::Resolved;
use crate::mysql::seed::{TABBY_SCHEMA, ident};
use crate::mysql::{Credentials, Error, Member, Result, sql};

pub async fn check(members: &[Resolved], credentials: &Credentials) -> Result<()> {
    let Some((writer, readers)) = members.split_first() else {
        return Ok(());
    };
    let token = crate::mysql::bootstrap::canary_token();
    let schema = ident(TABBY_SCHEMA);
    let mut conn = Member::connect(&writer.target, credentials).await?;
    for statement in [
        format!("CREATE DATABASE IF NOT EXISTS {schema}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.galera_canary (id TINYINT PRIMARY KEY, \
             token VARCHAR(64) NOT NULL) ENGINE=InnoDB"
        ),
        format!(
            "REPLACE INTO {schema}.galera_canary (id, token) VALUES (1, {})",
            sql::quote(&token)
        ),
    ] {
        conn.exec("writing the canary row", &statement).await?;
    }
    conn.disconnect().await;
    for reader in readers {
        let mut conn = Member::connect(&reader.target, credentials).await?;
        conn.exec("waiting for causality", "SET SESSION wsrep_sync_wait = 1")
            .await?;
        let seen: Option<String> = conn
            .first(
                "reading the canary row",
                &format!("SELECT token FROM {schema}.galera_canary WHERE id = 1"),
            )
            .await?;
        conn.disconnect().await;
        if seen.as_deref() != Some(token.as_str()) {
            return Err(Error::Unhealthy {
                member: reader.target.to_string(),
                message: format!(
                    "holds canary {seen:?}, but {} wrote {token:?}",
                    writer.container
                ),
            });
        }
    }
    Ok(())
}
