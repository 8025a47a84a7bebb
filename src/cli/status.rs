//! `tabby status`: this host's agent and its datastore on one screen, and
//! an exit status for health checks (non-zero with the reason when the
//! agent does not answer, etcd does not, or the agent is not ready).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{TimeZone, Utc};
use clap::Args;

use super::{EtcdArgs, Format};
use crate::driver::status::AgentStatus;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The plugin socket of this host's agent.
    #[arg(
        long,
        env = "TABBY_SOCKET",
        default_value = "/run/docker/plugins/tabby.sock"
    )]
    socket: PathBuf,
}

const ETCD_TIMEOUT: Duration = Duration::from_secs(3);

fn ago(unix: i64) -> String {
    let at = Utc.timestamp_opt(unix, 0).single().unwrap_or_default();
    let secs = (Utc::now() - at).num_seconds().max(0);
    format!("{} ({secs} s ago)", at.format("%Y-%m-%d %H:%M:%S UTC"))
}

async fn agent(socket: &std::path::Path) -> Result<AgentStatus, String> {
    let call = super::ipam_check::post(socket, "/Tabby.Status", "{}");
    match tokio::time::timeout(ETCD_TIMEOUT * 2, call).await {
        Err(_) => Err(format!("the agent on {} did not answer", socket.display())),
        Ok(Err(e)) => Err(format!(
            "cannot reach the agent on {}: {e}",
            socket.display()
        )),
        Ok(Ok((200, body))) => serde_json::from_slice(&body)
            .map_err(|e| format!("the agent's answer is not a status: {e}")),
        Ok(Ok((code, body))) => Err(format!(
            "the agent answered {code}: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}

async fn etcd(args: &EtcdArgs) -> Result<(), String> {
    let check = async {
        let store = args
            .connect()
            .await
            .map_err(|e| crate::error_chain::text(&e))?;
        store.revision().await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(ETCD_TIMEOUT, check).await {
        Err(_) => Err(format!(
            "no quorum read within {} s",
            ETCD_TIMEOUT.as_secs()
        )),
        Ok(result) => result.map(|_| ()),
    }
}

pub async fn run(args: StatusArgs, etcd_args: &EtcdArgs, format: Format) -> Result<()> {
    let (agent, etcd) = tokio::join!(agent(&args.socket), etcd(etcd_args));
    let mut problems = Vec::new();
    if let Err(e) = &etcd {
        problems.push(format!("etcd: {e}"));
    }
    match &agent {
        Err(e) => problems.push(e.clone()),
        Ok(status) => problems.extend(status.not_ready.clone()),
    }
    if format == Format::Json {
        let value = serde_json::json!({
            "healthy": problems.is_empty(),
            "problems": problems,
            "etcd": etcd.as_ref().err(),
            "agent": agent.as_ref().ok(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print(&agent, &etcd, etcd_args);
    }
    if !problems.is_empty() {
        bail!("unhealthy: {}", problems.join("; "));
    }
    Ok(())
}

fn print(agent: &Result<AgentStatus, String>, etcd: &Result<(), String>, args: &EtcdArgs) {
    match etcd {
        Ok(()) => println!(
            "etcd:       healthy (quorum read answered) at {}",
            args.etcd_endpoints.join(",")
        ),
        Err(e) => println!("etcd:       UNHEALTHY: {e}"),
    }
    let Ok(s) = agent else {
        println!("agent:      not answering");
        return;
    };
    println!(
        "agent:      tabby {} on {}, started {}",
        s.version,
        s.host,
        ago(s.started)
    );
    match &s.not_ready {
        None => println!("ready:      yes"),
        Some(reason) => println!("ready:      NO: {reason}"),
    }
    match s.firewall_applied {
        Some(at) => println!("firewall:   {}, last applied {}", s.firewall, ago(at)),
        None => println!("firewall:   {}, not applied yet", s.firewall),
    }
    println!(
        "routing:    {}, {} routes, {} full resyncs",
        s.routing, s.routes, s.resyncs
    );
    for (peer, info) in &s.bgp_sessions {
        println!("bgp:        {peer}: {info}");
    }
    println!(
        "endpoints:  {} on this host, {} in the cluster",
        s.local_endpoints, s.cluster_endpoints
    );
    match &s.last_error {
        Some((at, text)) => println!("last error: {} {text}", ago(*at)),
        None => println!("last error: none"),
    }
}
