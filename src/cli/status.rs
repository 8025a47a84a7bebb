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
use crate::store::MemberHealth;

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

/// The quorum read, and each member's own answer.
struct Etcd {
    quorum: Result<(), String>,
    members: Vec<MemberHealth>,
}

async fn etcd(args: &EtcdArgs) -> Etcd {
    let check = async {
        let store = args
            .connect()
            .await
            .map_err(|e| crate::error_chain::text(&e))?;
        let (quorum, members) = tokio::join!(store.revision(), store.members());
        Ok::<_, String>((quorum.map(|_| ()).map_err(|e| e.to_string()), members))
    };
    match tokio::time::timeout(ETCD_TIMEOUT, check).await {
        Err(_) => Etcd {
            quorum: Err(format!(
                "no quorum read within {} s",
                ETCD_TIMEOUT.as_secs()
            )),
            members: Vec::new(),
        },
        Ok(Err(e)) => Etcd {
            quorum: Err(e),
            members: Vec::new(),
        },
        Ok(Ok((quorum, members))) => Etcd { quorum, members },
    }
}

pub async fn run(args: StatusArgs, etcd_args: &EtcdArgs, format: Format) -> Result<()> {
    let (agent, etcd) = tokio::join!(agent(&args.socket), etcd(etcd_args));
    let mut problems = Vec::new();
    if let Err(e) = &etcd.quorum {
        problems.push(format!("etcd: {e}"));
    }
    for member in &etcd.members {
        if let Some(e) = &member.error {
            problems.push(format!("etcd member {}: {e}", member.endpoint));
        }
    }
    match &agent {
        Err(e) => problems.push(e.clone()),
        Ok(status) => problems.extend(status.not_ready.clone()),
    }
    if format == Format::Json {
        let value = serde_json::json!({
            "healthy": problems.is_empty(),
            "problems": problems,
            "etcd": etcd.quorum.as_ref().err(),
            "etcd_members": etcd.members,
            "agent": agent.as_ref().ok(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_etcd(&etcd, etcd_args);
        print_agent(&agent);
    }
    if !problems.is_empty() {
        bail!("unhealthy: {}", problems.join("; "));
    }
    Ok(())
}

fn print_etcd(etcd: &Etcd, args: &EtcdArgs) {
    match &etcd.quorum {
        Ok(()) => println!(
            "etcd:       healthy (quorum read answered) at {}",
            args.etcd_endpoints.join(",")
        ),
        Err(e) => println!("etcd:       UNHEALTHY: {e}"),
    }
    for m in &etcd.members {
        let id = m.id.as_deref().unwrap_or("?");
        let version = m.version.as_deref().unwrap_or("?");
        let role = if m.leader { ", leader" } else { "" };
        match &m.error {
            None => println!(
                "  member    {}: healthy{role}, id {id}, etcd {version}",
                m.endpoint
            ),
            Some(e) if m.version.is_some() => {
                println!("  member    {}: ALARM, id {id}: {e}", m.endpoint)
            }
            Some(e) => println!("  member    {}: UNHEALTHY: {e}", m.endpoint),
        }
    }
}

fn print_agent(agent: &Result<AgentStatus, String>) {
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
    let synced = s.routes_synced.map_or("never synced".into(), |at| {
        format!("last synced {}", ago(at))
    });
    println!(
        "routing:    {}, {} routes, {synced}, {} full resyncs",
        s.routing, s.routes, s.resyncs
    );
    for (peer, info) in &s.bgp_sessions {
        println!("bgp:        {peer}: {info}");
    }
    println!(
        "endpoints:  {} on this host, {} in the cluster",
        s.local_endpoints, s.cluster_endpoints
    );
    if s.recent_errors.is_empty() {
        println!("errors:     none logged");
    }
    for (at, level, text) in &s.recent_errors {
        println!(
            "{:<11} {} {text}",
            format!("{}:", level.to_lowercase()),
            ago(*at)
        );
    }
}
