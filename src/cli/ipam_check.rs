use std::sync::Arc;

use anyhow::Result;
use clap::Args;

use super::Format;
use crate::dataplane::Dataplane;
use crate::docker::DockerEngine;
use crate::driver::{Driver, DriverConfig};
use crate::ipam::short_id;
use crate::policy::iptables::IptablesFirewall;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Fix what is found: release leaked addresses, drop stale endpoint
    /// records, re-allocate addresses of live endpoints, remove stray links
    /// and routes.
    #[arg(long)]
    repair: bool,
    /// Records younger than this many seconds may belong to a Docker call
    /// in flight and are left alone.
    #[arg(long, default_value_t = 60)]
    grace: i64,
    /// This host's name in tabby (as its agent's --hostname).
    #[arg(long, env = "TABBY_HOSTNAME")]
    host: Option<String>,
    #[arg(
        long,
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    docker_host: String,
}

pub async fn run(args: CheckArgs, store: Store, format: Format) -> Result<()> {
    let host = super::default_hostname(args.host)?;
    anyhow::ensure!(
        store.nodes().await?.iter().any(|n| n.hostname == host),
        "no node {host}: pass --host with this host's name in tabby"
    );
    let driver = Driver::new(
        store,
        Dataplane::new(1500)?,
        Arc::new(IptablesFirewall::default()),
        DriverConfig {
            host: host.clone(),
            default_pool: None,
            block_prefix: crate::ipam::DEFAULT_BLOCK_PREFIX,
        },
        Some(Arc::new(DockerEngine::new(&args.docker_host))),
    );
    let report = driver
        .check(chrono::Duration::seconds(args.grace), args.repair)
        .await?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let f = &report.findings;
    if f.docker_unknown {
        println!(
            "Docker at {} did not answer: only links and routes were checked",
            args.docker_host
        );
    }
    for (ip, handle) in &f.leaked_allocations {
        println!(
            "leaked address  {ip}  ({}, for no live endpoint)",
            crate::ipam::describe(handle)
        );
    }
    for e in &f.stale_endpoints {
        println!(
            "stale endpoint  {} ({})  Docker no longer has it",
            short_id(&e.id),
            e.ip
        );
    }
    for e in &f.unallocated_endpoints {
        println!(
            "unallocated     {} ({})  live, but IPAM does not hold its address for it",
            short_id(&e.id),
            e.ip
        );
    }
    for link in &f.stray_links {
        println!("stray link      {link}");
    }
    for route in &f.stray_routes {
        println!("stray route     {}", route.dst);
    }
    for line in &report.repaired {
        println!("repaired: {line}");
    }
    for line in &report.unrepaired {
        println!("NOT repaired: {line}");
    }
    if f.is_clean() {
        println!("{host}: allocations, endpoints, links and routes agree with Docker");
    } else if !args.repair {
        anyhow::bail!("{host}: inconsistencies found (run with --repair to fix them)");
    } else if !report.unrepaired.is_empty() {
        anyhow::bail!("{host}: some inconsistencies could not be repaired");
    }
    Ok(())
}
