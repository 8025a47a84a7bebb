//! `tabby bgp …`: the cluster-wide BGP settings, peers, and this host's
//! sessions, in calicoctl's shape (`calicoctl bgp default-as`, `bgp peer`,
//! `node status`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;
use serde_json::json;

use super::bgp_edit::{self, PeerChange};
use super::output::print;
use super::{EtcdArgs, Format};
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum BgpCommand {
    /// Show the AS number of nodes without their own, or set it.
    DefaultAs {
        /// A plain AS number (1-4294967294, not 23456 or 65535).
        #[arg(value_name = "N", allow_negative_numbers = true)]
        asn: Option<String>,
    },
    /// Show or set the full node-to-node mesh (on unless turned off; turn
    /// it off once route reflectors or routers carry the routes).
    Mesh {
        #[arg(value_name = "on|off")]
        value: Option<String>,
    },
    /// BGP speakers outside tabby (routers) that nodes peer with.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// This host's BGP sessions, as its BIRD reports them.
    Status {
        /// The agent's BIRD directory (its --bird-dir).
        #[arg(long, env = "TABBY_BIRD_DIR", default_value = "/var/run/tabby/bird")]
        bird_dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    /// Add a peer of every node, or (--node) of one node; again with
    /// another --as changes its AS.
    Add {
        #[arg(value_name = "IP")]
        ip: String,
        /// The peer's AS number.
        #[arg(long = "as", value_name = "N", allow_negative_numbers = true)]
        asn: String,
        /// Only this node peers with it.
        #[arg(long, value_name = "H")]
        node: Option<String>,
    },
    /// Remove a global peer, or (--node) one node's peer.
    Remove {
        #[arg(value_name = "IP")]
        ip: String,
        #[arg(long, value_name = "H")]
        node: Option<String>,
    },
    /// List peers: global ones and each node's.
    Show,
}

pub async fn run(cmd: BgpCommand, etcd: &EtcdArgs, format: Format) -> Result<()> {
    let store = match cmd {
        // Sessions are read from the local BIRD: no etcd needed.
        BgpCommand::Status { ref bird_dir } => {
            return status(read_sessions(bird_dir).await?, format).await;
        }
        _ => etcd.connect().await?,
    };
    match cmd {
        BgpCommand::Status { .. } => {} // returned above
        BgpCommand::DefaultAs { asn: None } => show_default_as(&store, format).await?,
        BgpCommand::DefaultAs { asn: Some(n) } => {
            let changed = bgp_edit::set_default_as(&store, &n).await?;
            println!(
                "{} {n}",
                said(changed, "Default AS set to", "Default AS is already")
            );
        }
        BgpCommand::Mesh { value: None } => {
            let mesh = store.bgp_config().await?.mesh;
            match format {
                Format::Table => println!("{}", if mesh { "on" } else { "off" }),
                Format::Json => print(format, &[], vec![], &json!({ "mesh": mesh })),
            }
        }
        BgpCommand::Mesh { value: Some(v) } => {
            let changed = bgp_edit::set_mesh(&store, &v).await?;
            println!(
                "{} {v}",
                said(
                    changed,
                    "Node-to-node mesh turned",
                    "Node-to-node mesh is already"
                )
            );
        }
        BgpCommand::Peer(cmd) => peer(cmd, &store, format).await?,
    }
    Ok(())
}

fn said(changed: bool, yes: &'static str, no: &'static str) -> &'static str {
    if changed { yes } else { no }
}

async fn show_default_as(store: &Store, format: Format) -> Result<()> {
    let config = store.bgp_config().await?;
    let inherited = config.default_as.is_none();
    let text = if inherited {
        format!("{} (default)", config.asn())
    } else {
        config.asn().to_string()
    };
    match format {
        Format::Table => println!("{text}"),
        Format::Json => print(
            format,
            &[],
            vec![],
            &json!({ "default_as": config.asn(), "inherited_default": inherited }),
        ),
    }
    Ok(())
}

async fn peer(cmd: PeerCommand, store: &Store, format: Format) -> Result<()> {
    match cmd {
        PeerCommand::Add { ip, asn, node } => {
            let scope = scope(node.as_deref());
            match bgp_edit::add_peer(store, &ip, &asn, node.as_deref()).await? {
                PeerChange::Added => println!("Added BGP peer {ip} ({scope}, AS {asn})"),
                PeerChange::AsChanged { from } => {
                    println!("Changed the AS of BGP peer {ip} ({scope}) from {from} to {asn}")
                }
                PeerChange::Unchanged => {
                    println!("BGP peer {ip} ({scope}, AS {asn}) already exists")
                }
            }
        }
        PeerCommand::Remove { ip, node } => {
            bgp_edit::remove_peer(store, &ip, node.as_deref()).await?;
            println!("Removed BGP peer {ip} ({})", scope(node.as_deref()));
        }
        PeerCommand::Show => show_peers(store, format).await?,
    }
    Ok(())
}

/// The SCOPE column: `global`, or `node H`.
fn scope(node: Option<&str>) -> String {
    node.map_or("global".into(), |h| format!("node {h}"))
}

async fn show_peers(store: &Store, format: Format) -> Result<()> {
    let mut peers = store.bgp_peers().await?;
    // Global peers first, then each node's, as calicoctl listed them.
    peers.sort_by(|a, b| (&a.node, a.ip).cmp(&(&b.node, b.ip)));
    let rows = peers
        .iter()
        .map(|p| {
            vec![
                scope(p.node.as_deref()),
                p.ip.to_string(),
                p.asn.to_string(),
            ]
        })
        .collect();
    let out: Vec<_> = peers
        .iter()
        .map(|p| {
            let scope = if p.node.is_some() { "node" } else { "global" };
            json!({ "scope": scope, "node": p.node, "ip": p.ip, "as": p.asn })
        })
        .collect();
    print(format, &["SCOPE", "PEER ADDRESS", "AS NUM"], rows, &out);
    Ok(())
}

/// One BGP session of this host, as `tabby bgp status` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    pub peer: Ipv4Addr,
    /// mesh, global, node or reflector.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// BIRD's protocol state: up, start, down…
    pub state: String,
    pub since: String,
    /// Established, Active, Connect…, and BIRD's last error.
    pub info: String,
}

/// The sessions of the BIRD whose files are in `dir`.
async fn read_sessions(dir: &Path) -> Result<Vec<SessionRow>> {
    Ok(crate::routing::bird::sessions(dir)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            peer: s.peer,
            kind: s.kind.name(),
            state: s.state,
            since: s.since,
            info: s.info,
        })
        .collect())
}

/// `tabby bgp status`: calicoctl's `node status` table of this host's
/// sessions, or a JSON array of them.
async fn status(mut rows: Vec<SessionRow>, format: Format) -> Result<()> {
    rows.sort_by(|a, b| (a.kind, a.peer).cmp(&(b.kind, b.peer)));
    if format == Format::Table {
        if rows.is_empty() {
            println!("No IPv4 BGP peers found.");
            return Ok(());
        }
        println!("IPv4 BGP status");
    }
    let table = rows
        .iter()
        .map(|r| {
            vec![
                r.peer.to_string(),
                r.kind.to_string(),
                r.state.clone(),
                r.since.clone(),
                r.info.clone(),
            ]
        })
        .collect();
    print(
        format,
        &["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"],
        table,
        &rows,
    );
    Ok(())
}
