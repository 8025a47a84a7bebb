use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::output::{or_dash, print};
use super::{EtcdArgs, Format};
use crate::docker::DockerEngine;
use crate::model::MysqlDeclaration;
use crate::mysql::bootstrap::{Options, Outcome};
use crate::mysql::cluster::{Context, DEFAULT_CLUSTER};
use crate::mysql::declare;
use crate::mysql::resolve::Directory;
use crate::mysql::seed::Progress;
use crate::mysql::{Credentials, Password, sql};
use crate::store::Store;

/// Who tabby logs in as, and where container names are looked up.
#[derive(Args, Debug)]
pub struct AccessArgs {
    /// File holding the root password (first line).
    #[arg(long, env = "TABBY_MYSQL_ROOT_PASSWORD_FILE")]
    root_password_file: PathBuf,
    /// The replication account.
    #[arg(long, default_value = "repl")]
    repl_user: String,
    /// File holding the replication password (default: derived from the
    /// root password, so every run agrees on it).
    #[arg(long, env = "TABBY_MYSQL_REPL_PASSWORD_FILE")]
    repl_password_file: Option<PathBuf>,
    #[arg(
        long,
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    docker_host: String,
}

impl AccessArgs {
    pub(super) fn open(&self) -> Result<(Credentials, DockerEngine)> {
        Ok((self.load()?, DockerEngine::new(&self.docker_host)))
    }

    fn load(&self) -> Result<Credentials> {
        let repl = match &self.repl_password_file {
            Some(path) => Some(Password::from_file(path)?),
            None => None,
        };
        Ok(Credentials::new(
            Password::from_file(&self.root_password_file)?,
            &self.repl_user,
            repl,
        ))
    }
}

#[derive(Subcommand, Debug)]
pub enum MysqlCommand {
    /// Set up replication from a master to replicas (idempotent; seeds
    /// replicas that join after the master has data).
    Bootstrap {
        /// Container name or ID, or address.
        #[arg(long)]
        master: String,
        #[arg(long = "replica", required = true)]
        replicas: Vec<String>,
        /// Name the cluster is recorded under.
        #[arg(long, default_value = DEFAULT_CLUSTER)]
        cluster: String,
        /// Seconds to wait for members that do not accept connections yet.
        #[arg(long, default_value_t = 0)]
        wait: u64,
        /// Host pattern replicas connect from, e.g. '10.100.%' (default: the
        /// pools of the members' tabby networks). Repeatable.
        #[arg(long = "repl-host")]
        repl_hosts: Vec<String>,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// Replication state of a cluster's members (default: every cluster),
    /// or of the members named.
    Status {
        #[arg(long, conflicts_with = "members")]
        cluster: Option<String>,
        members: Vec<String>,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// Make a replica the master (graceful switchover).
    Promote {
        member: String,
        #[arg(long)]
        cluster: Option<String>,
        /// Promote even if the master cannot be reached.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// A server_id for a container, derived from its address.
    ServerId { member: String },
    /// Declared clusters: the only ones label-driven bootstrap acts on.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Galera clusters: every member writes, state transfer joins.
    #[command(subcommand)]
    Galera(super::galera::GaleraCommand),
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Declare a cluster; agents bootstrap only its confirmed members.
    Create {
        name: String,
        /// A confirmed member: CONTAINER (any host) or CONTAINER@HOST.
        /// Repeatable; without any, no container is confirmed yet.
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// Declared clusters (or the one named) and their members.
    Show { name: Option<String> },
    /// Forget a declaration (replication already set up is not undone).
    Remove { name: String },
    /// Confirm or drop members of a declared cluster.
    #[command(subcommand)]
    Member(MemberCommand),
}

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    Add {
        name: String,
        #[arg(required = true)]
        members: Vec<String>,
    },
    Remove {
        name: String,
        #[arg(required = true)]
        members: Vec<String>,
    },
}

/// A progress bar on a terminal; nothing otherwise.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, total_rows: u64) {
        self.0.set_length(total_rows);
        self.0.set_position(0);
    }
    fn advance(&self, rows: u64) {
        self.0.inc(rows);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn bar() -> Bar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("seeding {bar:40} {pos}/{len} rows ({per_sec}, {eta})")
            .expect("valid template"),
    );
    Bar(bar)
}

pub async fn run(cmd: MysqlCommand, etcd: &EtcdArgs, format: Format) -> Result<()> {
    let store = etcd.connect().await?;
    match cmd {
        MysqlCommand::Bootstrap {
            master,
            replicas,
            cluster,
            wait,
            repl_hosts,
            access,
        } => {
            let options = Options {
                wait: std::time::Duration::from_secs(wait),
                repl_hosts: (!repl_hosts.is_empty()).then_some(repl_hosts),
            };
            bootstrap(
                &store, &cluster, &master, &replicas, &access, &options, format,
            )
            .await
        }
        MysqlCommand::Status {
            cluster,
            members,
            access,
        } => status(&store, cluster.as_deref(), &members, &access, format).await,
        MysqlCommand::Promote {
            member,
            cluster,
            force,
            access,
        } => promote(&store, cluster.as_deref(), &member, force, &access, format).await,
        MysqlCommand::ServerId { member } => server_id(&store, &member, format).await,
        MysqlCommand::Cluster(cmd) => cluster(&store, cmd, format).await,
        MysqlCommand::Galera(cmd) => super::galera::run(&store, cmd, format).await,
    }
}

async fn bootstrap(
    store: &Store,
    cluster: &str,
    master: &str,
    replicas: &[String],
    access: &AccessArgs,
    options: &Options,
    format: Format,
) -> Result<()> {
    let (credentials, docker) = access.open()?;
    let context = Context::new(store, &docker);
    let report = context
        .bootstrap(cluster, master, replicas, &credentials, options, &bar())
        .await?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "Master {} ({}); replication user '{}'@{}",
        report.master,
        report.flavor,
        credentials.repl_user,
        report.user_hosts.join(", ")
    );
    for r in &report.replicas {
        let what = match &r.outcome {
            Outcome::Unchanged => "already replicating, unchanged".to_string(),
            Outcome::Seeded { rows, tables } => {
                format!("seeded ({rows} rows in {tables} tables) and replicating")
            }
            Outcome::Repointed => "pointed at the master and replicating".to_string(),
        };
        println!("Replica {}: {what}", r.replica);
    }
    println!("Verified: a canary row written on the master reached every replica");
    Ok(())
}

async fn status(
    store: &Store,
    cluster: Option<&str>,
    members: &[String],
    access: &AccessArgs,
    format: Format,
) -> Result<()> {
    let (credentials, docker) = access.open()?;
    if super::galera::status(store, cluster, members, &credentials, &docker, format).await? {
        return Ok(());
    }
    let context = Context::new(store, &docker);
    let statuses = context.status(cluster, members, &credentials).await?;
    let rows = statuses
        .iter()
        .map(|(cluster, s)| {
            let replica = s.replica.as_ref();
            vec![
                or_dash(cluster.as_deref()),
                s.name.clone(),
                or_dash(s.host.as_deref()),
                s.address.to_string(),
                s.role.map(|r| r.to_string()).unwrap_or("?".into()),
                or_dash(replica.map(|r| r.io_running.as_str())),
                or_dash(replica.map(|r| r.sql_running.as_str())),
                or_dash(
                    replica
                        .and_then(|r| r.lag)
                        .map(|l| l.to_string())
                        .as_deref(),
                ),
                or_dash(s.gtid.as_deref().filter(|g| !g.is_empty())),
                or_dash(
                    s.error
                        .clone()
                        .or_else(|| replica.and_then(|r| r.last_error()))
                        .as_deref(),
                ),
            ]
        })
        .collect();
    let json: Vec<_> = statuses
        .iter()
        .map(|(c, s)| json!({"cluster": c, "member": s}))
        .collect();
    let headers = [
        "cluster",
        "container",
        "host",
        "address",
        "role",
        "io",
        "sql",
        "lag",
        "gtid",
        "last error",
    ];
    print(format, &headers, rows, &json);
    if statuses.iter().any(|(_, s)| s.error.is_some()) {
        anyhow::bail!("some members could not be read");
    }
    Ok(())
}

async fn promote(
    store: &Store,
    cluster: Option<&str>,
    member: &str,
    force: bool,
    access: &AccessArgs,
    format: Format,
) -> Result<()> {
    let (credentials, docker) = access.open()?;
    let context = Context::new(store, &docker);
    let report = context
        .promote(cluster, member, &credentials, force)
        .await?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} is the master (was {})",
        report.new_master, report.old_master
    );
    for r in &report.replicas {
        println!("Replica {r}: replicating from the new master");
    }
    for s in &report.skipped {
        println!("Skipped (unreachable): {s}");
    }
    Ok(())
}

async fn server_id(store: &Store, member: &str, format: Format) -> Result<()> {
    let directory = Directory::load(store).await?;
    let target = directory
        .find(member)?
        .with_context(|| format!("no tabby endpoint or address {member}"))?;
    let id = sql::server_id(target.ip);
    match format {
        Format::Json => println!("{}", json!({"member": target, "server_id": id})),
        Format::Table => println!("{id}"),
    }
    Ok(())
}

async fn cluster(store: &Store, cmd: ClusterCommand, format: Format) -> Result<()> {
    let shown = match cmd {
        ClusterCommand::Create { name, members } => {
            vec![declare::create(store, &name, &members).await?]
        }
        ClusterCommand::Show { name } => declare::show(store, name.as_deref()).await?,
        ClusterCommand::Remove { name } => {
            declare::remove(store, &name).await?;
            println!("MySQL cluster {name} is no longer declared");
            return Ok(());
        }
        ClusterCommand::Member(MemberCommand::Add { name, members }) => {
            vec![declare::change_members(store, &name, &members, true).await?]
        }
        ClusterCommand::Member(MemberCommand::Remove { name, members }) => {
            vec![declare::change_members(store, &name, &members, false).await?]
        }
    };
    print_declarations(&shown, format)
}

fn print_declarations(declarations: &[MysqlDeclaration], format: Format) -> Result<()> {
    let rows = declarations
        .iter()
        .map(|d| {
            let members = d.members.join(", ");
            vec![
                d.name.clone(),
                if members.is_empty() {
                    "(none confirmed)".to_string()
                } else {
                    members
                },
                d.created.to_rfc3339(),
            ]
        })
        .collect();
    print(
        format,
        &["cluster", "members", "declared"],
        rows,
        &declarations,
    );
    Ok(())
}
