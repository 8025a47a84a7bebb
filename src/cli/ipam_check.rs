use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Format;
use crate::driver::check::CheckReport;
use crate::ipam::short_id;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Fix what is found: release leaked addresses, drop stale endpoint
    /// records, re-allocate addresses of live endpoints, remove stray links
    /// and routes. Runs in the host's agent, asked over its socket.
    #[arg(long)]
    repair: bool,
    /// Records younger than this many seconds may belong to a Docker call
    /// in flight and are left alone.
    #[arg(long, default_value_t = 60)]
    grace: i64,
    /// This host's name in tabby (as its agent's --hostname). Another
    /// host is checked only while it is down, and then only its records.
    #[arg(long, env = "TABBY_HOSTNAME")]
    host: Option<String>,
    /// The plugin socket of this host's agent.
    #[arg(
        long,
        env = "TABBY_SOCKET",
        default_value = "/run/docker/plugins/tabby.sock"
    )]
    socket: PathBuf,
}

/// POSTs JSON to the agent's socket; (status, body).
pub(super) async fn post(socket: &Path, path: &str, body: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = tokio::net::UnixStream::connect(socket).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: tabby\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP answer"))?;
    let status = String::from_utf8_lossy(&raw[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, raw[split + 4..].to_vec()))
}

pub async fn run(args: CheckArgs, store: Store, format: Format) -> Result<()> {
    let host = super::default_hostname(args.host)?;
    anyhow::ensure!(
        store.nodes().await?.iter().any(|n| n.hostname == host),
        "no node {host}: pass --host with this host's name in tabby"
    );
    if !store.alive_hosts().await?.contains(&host) {
        return datastore_only(&store, &host, args.repair).await;
    }
    let request = serde_json::json!({"host": host, "repair": args.repair, "grace": args.grace});
    let (status, body) = post(&args.socket, "/Tabby.IpamCheck", &request.to_string())
        .await
        .with_context(|| {
            format!(
                "{host} is up (its agent holds its liveness lease), and its check runs only in \
                 that agent, but no agent answers on {}: run this on {host}, or pass --socket",
                args.socket.display()
            )
        })?;
    if status != 200 {
        let err: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        anyhow::bail!(
            "the agent at {} refused the check of {host}: {}",
            args.socket.display(),
            err["Err"].as_str().unwrap_or("no reason given")
        );
    }
    let report: CheckReport =
        serde_json::from_slice(&body).context("the agent's report cannot be read")?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let f = &report.findings;
    if !f.unknown_networks.is_empty() {
        println!(
            "Docker does not know network(s) {}: liveness unknown, no address or endpoint judged",
            f.unknown_networks.join(", ")
        );
    } else if f.docker_unknown {
        println!("Docker did not answer the agent: only links and routes were checked");
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
    // Nothing judged by liveness is not the same as nothing wrong: such a
    // check never passes, whatever else it found or repaired.
    if f.docker_unknown || !f.unknown_networks.is_empty() {
        anyhow::bail!(
            "{host}: liveness unknown, so no address or endpoint was judged and none was freed"
        );
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

/// A host that is down: no agent can look at its kernel or Docker, and
/// this host's Docker knows nothing of it, so only its records are shown
/// and nothing is repaired.
async fn datastore_only(store: &Store, host: &str, repair: bool) -> Result<()> {
    let mut held = 0;
    for block in store.blocks().await? {
        held += block
            .value
            .allocated()
            .filter(|(_, h)| h.host == host)
            .count();
    }
    let endpoints = store.host_endpoints(host).await?;
    println!(
        "{host} is down (no liveness lease): datastore only, nothing judged by liveness; \
         it holds {held} address(es) and has {} endpoint record(s)",
        endpoints.len()
    );
    if repair {
        println!(
            "nothing repaired: {host}'s containers may still run; its agent repairs them when \
             it is back, or `tabby node remove {host}` frees them for good"
        );
    }
    Ok(())
}
