//! Seeds a replica that joins after the master has data: a consistent copy
//! of every user database, taken inside one snapshot whose GTID position
//! is read under a brief global read lock (what `mysqldump
//! --single-transaction --set-gtid-purged` and `mariadb-dump
//! --single-transaction --gtid` do), streamed row batch by row batch into
//! the replica with its binary log off, after which replication starts at
//! that position. Replaying the master's binary logs from the start would
//! instead break once they have been purged.

use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};

use super::sql::quote;
use super::{Error, Member, Result};

/// Schemas that belong to the server, never copied.
const SYSTEM_SCHEMAS: &str = "'mysql', 'information_schema', 'performance_schema', 'sys'";
/// tabby's own schema (the canary): dropped and copied like the rest.
pub const TABBY_SCHEMA: &str = "tabby";
/// Placeholders per INSERT stay well under the protocol's 65,535.
const PARAMS_PER_BATCH: usize = 20_000;
const MAX_ROWS_PER_BATCH: usize = 1_000;

/// Told how many rows are copied out of how many.
pub trait Progress: Send + Sync {
    fn start(&self, _total_rows: u64) {}
    fn advance(&self, _rows: u64) {}
    fn finish(&self) {}
}

pub struct Silent;
impl Progress for Silent {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    pub databases: usize,
    pub tables: usize,
    pub rows: u64,
    pub gtid: String,
}

pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// User databases, with or without `tabby`'s own.
async fn schemas(member: &mut Member, with_tabby: bool) -> Result<Vec<String>> {
    let excluded = if with_tabby {
        SYSTEM_SCHEMAS.to_string()
    } else {
        format!("{SYSTEM_SCHEMAS}, {}", quote(TABBY_SCHEMA))
    };
    member
        .rows(
            "listing databases",
            &format!(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
                 WHERE SCHEMA_NAME NOT IN ({excluded}) ORDER BY SCHEMA_NAME"
            ),
        )
        .await
        .map(|rows| rows.into_iter().filter_map(|r| r.get(0)).collect())
}

/// Refuses a replica that holds data of its own: seeding copies into empty
/// replicas only, and never drops a user's database.
pub async fn check_empty(replica: &mut Member) -> Result<()> {
    let schemas = schemas(replica, false).await?;
    if schemas.is_empty() {
        return Ok(());
    }
    Err(Error::Check {
        member: replica.target.to_string(),
        message: format!(
            "holds databases ({}) but replicates from no master: tabby seeds empty replicas \
             only; drop them or start a fresh container",
            schemas.join(", ")
        ),
    })
}

/// Copies the master's data into `replica` and positions it to replicate
/// from the copy's GTID position (replication itself is not started).
pub async fn seed(
    master: &mut Member,
    replica: &mut Member,
    progress: &dyn Progress,
) -> Result<Seeded> {
    check_empty(replica).await?;
    for statement in [
        "SET SESSION sql_log_bin = 0",
        "SET SESSION foreign_key_checks = 0, unique_checks = 0",
        "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00'",
    ] {
        replica
            .exec("preparing the copy session", statement)
            .await?;
    }
    replica
        .exec(
            "dropping tabby's canary schema",
            &format!("DROP DATABASE IF EXISTS {}", ident(TABBY_SCHEMA)),
        )
        .await?;

    master
        .exec("preparing the snapshot", "SET SESSION time_zone = '+00:00'")
        .await?;
    master
        .exec(
            "preparing the snapshot",
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        )
        .await?;
    master
        .global_read_lock("locking for a consistent position")
        .await?;
    let snapshot = async {
        master
            .exec(
                "starting the snapshot",
                "START TRANSACTION WITH CONSISTENT SNAPSHOT",
            )
            .await?;
        let statement = master.flavor.snapshot_position();
        master
            .first::<Option<String>>("reading the snapshot's GTID position", statement)
            .await
    }
    .await;
    master
        .exec("releasing the read lock", "UNLOCK TABLES")
        .await?;
    let gtid = snapshot?.flatten().unwrap_or_default();

    let copied = copy_all(master, replica, progress).await;
    let _ = master.exec("ending the snapshot", "COMMIT").await;
    progress.finish();
    let (databases, tables, rows) = copied?;

    let statements = replica.flavor.start_replica_at(&gtid);
    for statement in statements {
        replica
            .exec("setting the replication start position", &statement)
            .await?;
    }
    Ok(Seeded {
        databases,
        tables,
        rows,
        gtid,
    })
}

struct Table {
    schema: String,
    name: String,
    columns: Vec<String>,
    rows: u64,
}

async fn copy_all(
    master: &mut Member,
    replica: &mut Member,
    progress: &dyn Progress,
) -> Result<(usize, usize, u64)> {
    // Only schemas that exist: a definition that cannot be read is an error.
    let schemas = schemas(master, true).await?;
    let mut tables = Vec::new();
    let mut views = Vec::new();
    let mut databases = 0;
    for schema in &schemas {
        let (_, create): (String, String) = master
            .first(
                "reading a database definition",
                &format!("SHOW CREATE DATABASE IF NOT EXISTS {}", ident(schema)),
            )
            .await?
            .unwrap_or_default();
        databases += 1;
        replica.exec("creating a database", &create).await?;
        let listed = master
            .rows(
                "listing tables",
                &format!(
                    "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = {} ORDER BY TABLE_NAME",
                    quote(schema)
                ),
            )
            .await?;
        for row in listed {
            let (name, kind): (String, String) = mysql_async::from_row(row);
            if kind == "VIEW" {
                views.push((schema.clone(), name));
            } else {
                tables.push(describe_table(master, schema, &name).await?);
            }
        }
    }
    progress.start(tables.iter().map(|t| t.rows).sum());
    let mut rows = 0;
    for table in &tables {
        let qualified = format!("{}.{}", ident(&table.schema), ident(&table.name));
        let (_, create): (String, String) = master
            .first(
                "reading a table definition",
                &format!("SHOW CREATE TABLE {qualified}"),
            )
            .await?
            .unwrap_or_default();
        replica
            .exec(
                "choosing the database",
                &format!("USE {}", ident(&table.schema)),
            )
            .await?;
        replica.exec("creating a table", &create).await?;
        rows += copy_rows(master, replica, table, progress).await?;
    }
    for (schema, name) in &views {
        let qualified = format!("{}.{}", ident(schema), ident(name));
        let row: Option<Row> = master
            .first(
                "reading a view definition",
                &format!("SHOW CREATE VIEW {qualified}"),
            )
            .await?;
        if let Some(create) = row.and_then(|r| r.get::<String, _>(1)) {
            replica
                .exec("choosing the database", &format!("USE {}", ident(schema)))
                .await?;
            replica.exec("creating a view", &create).await?;
        }
    }
    Ok((databases, tables.len(), rows))
}

async fn describe_table(master: &mut Member, schema: &str, name: &str) -> Result<Table> {
    // Generated columns cannot be written: they are recomputed.
    let columns = master
        .rows(
            "listing columns",
            &format!(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} AND EXTRA NOT LIKE '%GENERATED%' \
                 ORDER BY ORDINAL_POSITION",
                quote(schema),
                quote(name)
            ),
        )
        .await?
        .into_iter()
        .filter_map(|r| r.get(0))
        .collect();
    let rows = master
        .first::<u64>(
            "counting rows",
            &format!("SELECT COUNT(*) FROM {}.{}", ident(schema), ident(name)),
        )
        .await?
        .unwrap_or(0);
    Ok(Table {
        schema: schema.to_string(),
        name: name.to_string(),
        columns,
        rows,
    })
}

fn insert_statement(table: &Table, rows: usize) -> String {
    let columns: Vec<String> = table.columns.iter().map(|c| ident(c)).collect();
    let one = format!("({})", vec!["?"; columns.len()].join(","));
    format!(
        "INSERT INTO {}.{} ({}) VALUES {}",
        ident(&table.schema),
        ident(&table.name),
        columns.join(","),
        vec![one; rows].join(",")
    )
}

/// Streams one table's rows from the snapshot into the replica.
async fn copy_rows(
    master: &mut Member,
    replica: &mut Member,
    table: &Table,
    progress: &dyn Progress,
) -> Result<u64> {
    if table.columns.is_empty() {
        return Ok(0);
    }
    let per_batch = (PARAMS_PER_BATCH / table.columns.len()).clamp(1, MAX_ROWS_PER_BATCH);
    let select = format!(
        "SELECT {} FROM {}.{}",
        table
            .columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(","),
        ident(&table.schema),
        ident(&table.name)
    );
    let mut copied = 0u64;
    let mut batch: Vec<Value> = Vec::new();
    let mut batch_rows = 0;
    let mut result = match master.conn().query_iter(select).await {
        Ok(result) => result,
        Err(e) => return Err(master.error("reading rows", e)),
    };
    loop {
        let next = result.next().await;
        let row = match next {
            Ok(row) => row,
            Err(e) => {
                drop(result);
                return Err(master.error("reading rows", e));
            }
        };
        let done = row.is_none();
        if let Some(row) = row {
            batch.extend(row.unwrap());
            batch_rows += 1;
        }
        if batch_rows > 0 && (done || batch_rows == per_batch) {
            let statement = insert_statement(table, batch_rows);
            let values = std::mem::take(&mut batch);
            let written = replica.conn().exec_drop(statement, values).await;
            if let Err(e) = written {
                drop(result);
                return Err(replica.error("writing rows", e));
            }
            copied += batch_rows as u64;
            progress.advance(batch_rows as u64);
            batch_rows = 0;
        }
        if done {
            break;
        }
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_batches_have_one_placeholder_per_value() {
        assert_eq!(ident("we`ird"), "`we``ird`");
        let table = Table {
            schema: "app".into(),
            name: "t".into(),
            columns: vec!["id".into(), "v".into()],
            rows: 3,
        };
        assert_eq!(
            insert_statement(&table, 2),
            "INSERT INTO `app`.`t` (`id`,`v`) VALUES (?,?),(?,?)"
        );
    }
}
