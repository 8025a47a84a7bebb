//! Sets up replication from one master to its replicas, idempotently:
//! every member is connected and checked before anything changes, so a
//! failed check leaves no member half-configured; a replica that already
//! replicates from the master is left alone; a new one is seeded from a
//! consistent copy; a canary row written on the master proves the result.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use ipnet::Ipv4Net;
use serde::Serialize;

use super::seed::{self, Progress, TABBY_SCHEMA, ident};
use super::sql::{self, Flavor};
use super::status::{ReplicaStatus, replica_status};
use super::{Credentials, Error, Member, Result, Target};

pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// What bootstrap did to one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Outcome {
    /// Already replicating from this master, healthy: untouched.
    Unchanged,
    /// Seeded from a copy of the master, then started.
    Seeded { rows: u64, tables: usize },
    /// Replicated from another server (or had stopped): pointed at this
    /// master and restarted, keeping its position.
    Repointed,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaReport {
    pub replica: Target,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub master: Target,
    pub flavor: String,
    pub replicas: Vec<ReplicaReport>,
    /// Host patterns the replication user was made for.
    pub user_hosts: Vec<String>,
}

/// Connects to every target concurrently, each retried for up to `wait`
/// while it does not answer (a server still initialising); a refused login
/// is final. The first failure (master first) is the error, and nothing
/// has been changed anywhere.
pub async fn connect_all(
    targets: &[Target],
    credentials: &Credentials,
    wait: Duration,
) -> Result<Vec<Member>> {
    let deadline = tokio::time::Instant::now() + wait;
    let connected = join_all(targets.iter().map(|target| async move {
        loop {
            match Member::connect(target, credentials).await {
                Err(Error::Connect { message, .. })
                    if !message.contains("Access denied")
                        && tokio::time::Instant::now() < deadline =>
                {
                    tracing::debug!(%target, %message, "not accepting connections yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                other => return other,
            }
        }
    }))
    .await;
    connected.into_iter().collect()
}

/// Checks that the members can form one replicated cluster. Each failure
/// names the member and the setting, and says what to pass.
pub fn check(members: &[&Member]) -> Result<()> {
    let family = members[0].flavor.family();
    let mut ids: HashMap<u32, &Target> = HashMap::new();
    let mut uuids: HashMap<&str, &Target> = HashMap::new();
    for member in members {
        let who = || member.target.to_string();
        let fail = |message: String| {
            Err(Error::Check {
                member: who(),
                message,
            })
        };
        if member.flavor.family() != family {
            return fail(format!(
                "is {} {} while {} is {family}: replication across flavors is not supported",
                member.flavor.family(),
                member.settings.version,
                members[0].target
            ));
        }
        let id = member.settings.server_id;
        if id == 0 {
            return fail(format!(
                "server_id is 0, which cannot replicate: start it with --server-id={} \
                 (`tabby mysql server-id {}`)",
                sql::server_id(member.target.ip),
                member.target.name
            ));
        }
        if let Some(other) = ids.insert(id, &member.target) {
            return fail(format!(
                "server_id {id} is also the server_id of {other}: start it with --server-id={} \
                 (unique per member; `tabby mysql server-id {}`)",
                sql::server_id(member.target.ip),
                member.target.name
            ));
        }
        if let Some(uuid) = member.settings.server_uuid.as_deref()
            && let Some(other) = uuids.insert(uuid, &member.target)
        {
            return fail(format!(
                "server_uuid {uuid} is also {other}'s (a cloned data directory?): remove its \
                 auto.cnf and restart it"
            ));
        }
        if !member.settings.log_bin {
            return fail(
                "log_bin is OFF: start it with --log-bin (every member needs a binary log: \
                 replicas may be promoted)"
                    .to_string(),
            );
        }
        if let Flavor::MySql { .. } = member.flavor {
            let on =
                |v: &Option<String>| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case("ON"));
            if !on(&member.settings.gtid_mode) || !on(&member.settings.enforce_gtid_consistency) {
                return fail(format!(
                    "gtid_mode is {} and enforce_gtid_consistency is {}: start it with \
                     --gtid-mode=ON --enforce-gtid-consistency=ON",
                    member.settings.gtid_mode.as_deref().unwrap_or("?"),
                    member
                        .settings
                        .enforce_gtid_consistency
                        .as_deref()
                        .unwrap_or("?")
                ));
            }
        }
    }
    Ok(())
}

/// How bootstrap goes about it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// How long to wait for members that do not accept connections yet.
    pub wait: Duration,
    /// Host patterns for the replication account, instead of the members'
    /// pools (members outside tabby's pools).
    pub repl_hosts: Option<Vec<String>>,
}

/// The host patterns replicas connect from: the pool of each member's
/// network (a replica may later be promoted, so all of them).
pub fn user_hosts(targets: &[Target]) -> Result<Vec<String>> {
    let pools: BTreeSet<Ipv4Net> = targets.iter().filter_map(|t| t.pool).collect();
    if pools.is_empty() {
        return Err(Error::Invalid(format!(
            "none of the members has an address in a tabby pool ({}): cannot restrict the \
             replication user to the network; name the hosts replicas connect from with --repl-host",
            targets
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(pools.iter().map(sql::user_host).collect())
}

/// Creates the replication user (once per host pattern), idempotently.
pub async fn ensure_replication_user(
    master: &mut Member,
    hosts: &[String],
    credentials: &Credentials,
) -> Result<()> {
    for host in hosts {
        for statement in sql::create_replication_user(
            &credentials.repl_user,
            host,
            credentials.repl_password.expose(),
        ) {
            master
                .exec_secret("creating the replication user", &statement)
                .await?;
        }
    }
    Ok(())
}

/// Points a replica at `master` and starts it. The replica's position is
/// whatever it is: a seed set it, or it continues where it was.
pub async fn replicate_from(
    replica: &mut Member,
    master: &Target,
    credentials: &Credentials,
) -> Result<()> {
    let flavor = replica.flavor;
    replica
        .exec("stopping replication", flavor.stop_replication())
        .await?;
    let change = flavor.change_source(
        master.ip,
        master.port,
        &credentials.repl_user,
        credentials.repl_password.expose(),
    );
    replica
        .exec_secret(&format!("pointing it at {master}"), &change)
        .await?;
    replica
        .exec("starting replication", flavor.start_replication())
        .await
}

/// A value no earlier canary row holds.
pub fn canary_token() -> String {
    format!(
        "{:x}-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
        std::process::id()
    )
}

/// Writes a canary row on the master and waits for every replica to
/// apply it; then each must be healthy and hold the same row.
pub async fn verify(master: &mut Member, replicas: &mut [Member], timeout: Duration) -> Result<()> {
    let token = canary_token();
    let schema = ident(TABBY_SCHEMA);
    for statement in [
        format!("CREATE DATABASE IF NOT EXISTS {schema}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.canary (id TINYINT PRIMARY KEY, \
             token VARCHAR(64) NOT NULL, written TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"
        ),
        format!(
            "REPLACE INTO {schema}.canary (id, token) VALUES (1, {})",
            sql::quote(&token)
        ),
    ] {
        master.exec("writing the canary row", &statement).await?;
    }
    let position = master.gtid_position().await?;
    let checks = replicas.iter_mut().map(|replica| {
        let (position, token, schema) = (&position, &token, &schema);
        async move {
            let applied = replica.wait_for_gtid(position, timeout).await?;
            let status = replica_status(replica).await?;
            let member = replica.target.to_string();
            let unhealthy = |message: String| Error::Unhealthy {
                member: member.clone(),
                message,
            };
            let describe = |s: &Option<ReplicaStatus>| {
                s.as_ref()
                    .map(|s| s.describe())
                    .unwrap_or_else(|| "not replicating".to_string())
            };
            if !applied {
                return Err(unhealthy(format!(
                    "the canary row did not arrive within {} s ({})",
                    timeout.as_secs(),
                    describe(&status)
                )));
            }
            if !status.as_ref().is_some_and(|s| s.healthy()) {
                return Err(unhealthy(describe(&status)));
            }
            let seen: Option<String> = replica
                .first(
                    "reading the canary row",
                    &format!("SELECT token FROM {schema}.canary WHERE id = 1"),
                )
                .await?;
            if seen.as_deref() != Some(token.as_str()) {
                return Err(unhealthy(format!(
                    "holds canary {seen:?}, the master wrote {token:?}"
                )));
            }
            Ok(())
        }
    });
    join_all(checks).await.into_iter().collect()
}

/// The whole bootstrap: check, create the user, configure each replica
/// (seeding new ones), verify.
pub async fn bootstrap(
    master: &Target,
    replicas: &[Target],
    credentials: &Credentials,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Report> {
    let mut targets = vec![master.clone()];
    targets.extend(replicas.iter().cloned());
    let mut seen = BTreeSet::new();
    for target in &targets {
        if !seen.insert(target.ip) {
            return Err(Error::Invalid(format!(
                "{target} is named twice: a member is either the master or one replica"
            )));
        }
    }
    let user_hosts = match &options.repl_hosts {
        Some(hosts) => hosts.clone(),
        None => user_hosts(&targets)?,
    };
    let mut members = connect_all(&targets, credentials, options.wait).await?;
    check(&members.iter().collect::<Vec<_>>())?;
    let mut states = Vec::new();
    for member in members.iter_mut().skip(1) {
        states.push(replica_status(member).await?);
    }
    let (master_member, replica_members) = members.split_first_mut().expect("a master");
    if let Some(status) = replica_status(master_member).await? {
        return Err(Error::Check {
            member: master.to_string(),
            message: format!(
                "replicates from {} itself: promote it first (`tabby mysql promote {}`)",
                status.source_host, master.name
            ),
        });
    }
    // New replicas must be empty before anything is written anywhere.
    for (replica, state) in replica_members.iter_mut().zip(&states) {
        if state.is_none() {
            seed::check_empty(replica).await?;
        }
    }
    ensure_replication_user(master_member, &user_hosts, credentials).await?;

    let mut reports = Vec::new();
    for (replica, state) in replica_members.iter_mut().zip(states) {
        let outcome = match state {
            Some(s) if s.replicates_from(master.ip) && s.healthy() => Outcome::Unchanged,
            Some(_) => {
                replicate_from(replica, master, credentials).await?;
                Outcome::Repointed
            }
            None => {
                let seeded = seed::seed(master_member, replica, progress).await?;
                replicate_from(replica, master, credentials).await?;
                Outcome::Seeded {
                    rows: seeded.rows,
                    tables: seeded.tables,
                }
            }
        };
        reports.push(ReplicaReport {
            replica: replica.target.clone(),
            outcome,
        });
    }
    verify(master_member, replica_members, VERIFY_TIMEOUT).await?;
    let flavor = format!(
        "{} {}",
        master_member.flavor.family(),
        master_member.settings.version
    );
    for member in members {
        member.disconnect().await;
    }
    Ok(Report {
        master: master.clone(),
        flavor,
        replicas: reports,
        user_hosts,
    })
}
