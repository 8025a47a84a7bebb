//! `tabby mysql galera …`: parse, call `mysql::galera`, print.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::Format;
use super::mysql::AccessArgs;
use super::output::{or_dash, print};
use crate::docker::DockerEngine;
use crate::model::galera::SstMethod;
use crate::mysql::Credentials;
use crate::mysql::galera::cluster::{Galera, Report};
use crate::mysql::galera::status::MemberStatus;
use crate::store::Store;

/// What every Galera command takes.
#[derive(Args, Debug)]
pub struct Common {
    /// Seconds each member may take to reach a state.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
    #[command(flatten)]
    access: AccessArgs,
}

#[derive(Subcommand, Debug)]
pub enum GaleraCommand {
    /// Form a Galera cluster: check every member, start the first as a new
    /// cluster, join the others by state transfer, verify (idempotent).
    Bootstrap {
        #[arg(long)]
        cluster: String,
        /// Container name or ID, or address; at least two. The first starts
        /// the cluster.
        #[arg(long = "member", required = true)]
        members: Vec<String>,
        /// How a joining member receives its copy.
        #[arg(long, value_enum, default_value_t = SstMethod::Rsync)]
        sst: SstMethod,
        #[command(flatten)]
        common: Common,
    },
    /// Add a member: it joins by state transfer.
    Join {
        #[arg(long)]
        cluster: String,
        member: String,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a member cleanly: its server is stopped, the cluster shrinks.
    Leave {
        #[arg(long)]
        cluster: String,
        member: String,
        #[command(flatten)]
        common: Common,
    },
    /// Start a cluster again after every member went down: from the member
    /// with the highest last committed seqno.
    Recover {
        #[arg(long)]
        cluster: String,
        /// Find the positions and print the plan; start nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        common: Common,
    },
}

fn say(line: &str) {
    eprintln!("{line}");
}

pub async fn run(store: &Store, cmd: GaleraCommand, format: Format) -> Result<()> {
    let (GaleraCommand::Bootstrap { common, .. }
    | GaleraCommand::Join { common, .. }
    | GaleraCommand::Leave { common, .. }
    | GaleraCommand::Recover { common, .. }) = &cmd;
    let (credentials, docker) = common.access.open()?;
    let galera = Galera {
        store,
        docker: Some(&docker),
        credentials: &credentials,
        timeout: Duration::from_secs(common.timeout),
        say: &say,
    };
    let report = match &cmd {
        GaleraCommand::Bootstrap {
            cluster,
            members,
            sst,
            ..
        } => galera.bootstrap(cluster, members, *sst).await?,
        GaleraCommand::Join {
            cluster, member, ..
        } => galera.join(cluster, member).await?,
        GaleraCommand::Leave {
            cluster, member, ..
        } => galera.leave(cluster, member).await?,
        GaleraCommand::Recover {
            cluster, dry_run, ..
        } => {
            let recovered = galera.recover(cluster, *dry_run).await?;
            match recovered.report {
                Some(report) => report,
                None => {
                    if format == Format::Json {
                        println!("{}", serde_json::to_string_pretty(&recovered.plan)?);
                    } else {
                        println!("Would recover Galera cluster {cluster}:");
                        for line in recovered.plan.lines() {
                            println!("  {line}");
                        }
                    }
                    return Ok(());
                }
            }
        }
    };
    print_report(&report, format)
}

fn print_report(report: &Report, format: Format) -> Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let n = report.members.len();
    println!(
        "Galera cluster {}: {n} members, Primary, every member Synced{}",
        report.cluster,
        if report.changed { "" } else { " (unchanged)" }
    );
    for m in &report.members {
        println!(
            "  {} ({} on {}): {}, incoming {}",
            m.container,
            m.address,
            m.host,
            m.state.describe(),
            m.state.incoming_addresses.join(",")
        );
    }
    println!("Verified: a canary row written on one member was read on every other");
    Ok(())
}

/// Galera members in `tabby mysql status`; false if one could not be read
/// or is not Synced in a Primary cluster.
pub fn print_status(rows: &[MemberStatus], format: Format) -> bool {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let s = r.state.as_ref();
            vec![
                r.cluster.clone(),
                r.container.clone(),
                r.host.clone(),
                r.address.clone(),
                or_dash(s.map(|s| s.state.as_str()).filter(|s| !s.is_empty())),
                or_dash(s.map(|s| s.cluster_size.to_string()).as_deref()),
                or_dash(s.map(|s| if s.primary() { "yes" } else { "no" })),
                or_dash(s.map(|s| s.last_committed.to_string()).as_deref()),
                or_dash(
                    s.map(|s| format!("{:.3}", s.flow_control_paused))
                        .as_deref(),
                ),
                or_dash(r.error.as_deref()),
            ]
        })
        .collect();
    let headers = [
        "cluster",
        "container",
        "host",
        "address",
        "state",
        "size",
        "primary",
        "last committed",
        "fc paused",
        "error",
    ];
    print(format, &headers, table, &rows);
    rows.iter()
        .all(|r| r.state.as_ref().is_some_and(|s| s.synced()))
}

/// Galera clusters' members; true if `cluster` names one (and nothing
/// else is to be shown).
pub async fn status(
    store: &Store,
    cluster: Option<&str>,
    members: &[String],
    credentials: &Credentials,
    docker: &DockerEngine,
    format: Format,
) -> Result<bool> {
    let galera_cluster = match cluster {
        Some(name) => store.galera_cluster(name).await?.is_some(),
        None => false,
    };
    if !members.is_empty() || (cluster.is_some() && !galera_cluster) {
        return Ok(false);
    }
    let galera = crate::mysql::galera::cluster::Galera {
        store,
        docker: Some(docker),
        credentials,
        timeout: std::time::Duration::ZERO,
        say: &|_| {},
    };
    let rows = galera.status(cluster).await?;
    if rows.is_empty() {
        return Ok(false);
    }
    let healthy = print_status(&rows, format);
    if !healthy {
        anyhow::bail!("some Galera members are not Synced in a Primary cluster");
    }
    Ok(galera_cluster || store.mysql_clusters().await?.is_empty())
}
