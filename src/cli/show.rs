//! Read-only views: nodes, endpoints, allocations.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use super::output::{or_dash, print};
use super::{EtcdArgs, Format};
use crate::ipam::{Ipam, block, describe, short_id};
use crate::model::{BgpConfig, BgpStatus, NodeBgp};

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// List nodes: address, state, blocks, routes, endpoints, last sync.
    Show,
    /// Forget a node that is gone for good (refused while it is up).
    Remove { hostname: String },
    /// `tabby node H bgp …`: the words after `node`, parsed by node_bgp.
    #[command(external_subcommand)]
    Host(Vec<String>),
}

#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// List endpoints.
    Show {
        /// Full IDs, MAC and interface.
        #[arg(long, visible_alias = "wide")]
        detailed: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum IpamCommand {
    /// Blocks and their use, or who holds one address.
    Show {
        #[arg(long)]
        ip: Option<IpAddr>,
    },
    /// Release everything a node that is gone holds: addresses, blocks and
    /// endpoint records (refused while the node is up).
    Release {
        #[arg(long)]
        node: String,
    },
    /// Compare this host's allocations, endpoints, links and routes with
    /// what Docker says is live; --repair fixes what it finds.
    Check(super::ipam_check::CheckArgs),
}

async fn refuse_if_up(store: &crate::store::Store, host: &str) -> Result<()> {
    if store.alive_hosts().await?.iter().any(|h| h == host) {
        anyhow::bail!("node {host} is up: stop its agent first (and wait for its lease to expire)");
    }
    Ok(())
}

pub async fn node(cmd: NodeCommand, etcd: &EtcdArgs, format: Format) -> Result<()> {
    let hostname = match cmd {
        NodeCommand::Show => return node_show(etcd, format).await,
        NodeCommand::Host(words) => return super::node_bgp::run(words, etcd).await,
        NodeCommand::Remove { hostname } => hostname,
    };
    let store = etcd.connect().await?;
    refuse_if_up(&store, &hostname).await?;
    if !store.nodes().await?.iter().any(|n| n.hostname == hostname) {
        anyhow::bail!("no node {hostname}");
    }
    store.delete_node(&hostname).await?;
    println!(
        "Removed node {hostname}; its addresses stay until `tabby ipam release --node {hostname}`"
    );
    Ok(())
}

/// What `node show` says of each node's BGP: its AS, role and sessions.
struct BgpView {
    /// None when the cluster-wide record cannot be read.
    config: Option<BgpConfig>,
    nodes: BTreeMap<String, NodeBgp>,
    statuses: BTreeMap<String, BgpStatus>,
}

impl BgpView {
    async fn read(store: &crate::store::Store) -> Result<Self> {
        // A broken BGP record must not hide the nodes (their state is what
        // an operator looks at first when something is wrong).
        let config = match store.bgp_config().await {
            Ok(config) => Some(config),
            Err(err) => {
                eprintln!("warning: cannot read the BGP settings: {err}");
                None
            }
        };
        Ok(BgpView {
            config,
            nodes: store.bgp_nodes().await?,
            statuses: store.bgp_statuses().await?,
        })
    }

    /// The AS NUM and BGP PEERS cells, and the same as JSON fields.
    fn of(&self, host: &str) -> ([String; 3], serde_json::Value) {
        let node = self.nodes.get(host).cloned().unwrap_or_default();
        let asn = node.asn.or(self.config.as_ref().map(BgpConfig::asn));
        let inherited = node.asn.is_none();
        let as_cell = match asn {
            Some(n) if inherited => format!("{n} (inherited)"),
            Some(n) => n.to_string(),
            None => "-".into(),
        };
        let status = self.statuses.get(host);
        let peers_cell = status.map_or("-".into(), |s| {
            format!("{}/{}", s.established, s.configured)
        });
        // IPv6 rides the IPv4 sessions: of the same sessions, those whose
        // IPv6 channel is up.
        let peers6_cell = status.map_or("-".into(), |s| {
            format!("{}/{}", s.established6, s.configured)
        });
        let peers =
            status.map(|s| json!({"established": s.established, "configured": s.configured}));
        let peers6 =
            status.map(|s| json!({"established": s.established6, "configured": s.configured}));
        let fields = json!({
            "as": asn, "as_inherited": inherited,
            "route_reflector": node.route_reflector, "bgp_peers": peers, "bgp_peers_v6": peers6,
        });
        ([as_cell, peers_cell, peers6_cell], fields)
    }
}

async fn node_show(etcd: &EtcdArgs, format: Format) -> Result<()> {
    let store = etcd.connect().await?;
    let alive: HashSet<String> = store.alive_hosts().await?.into_iter().collect();
    let statuses: std::collections::HashMap<String, crate::model::NodeStatus> =
        store.node_statuses().await?.into_iter().collect();
    let bgp = BgpView::read(&store).await?;
    let blocks = store.blocks().await?;
    let endpoints = store.endpoints().await?;
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for node in store.nodes().await? {
        let state = if alive.contains(&node.hostname) {
            "up"
        } else {
            "down"
        };
        let claimed: Vec<String> = blocks
            .iter()
            .filter(|b| b.value.affinity.as_deref() == Some(node.hostname.as_str()))
            .map(|b| b.value.cidr.to_string())
            .collect();
        let count = endpoints.iter().filter(|e| e.host == node.hostname).count();
        let status = statuses.get(&node.hostname);
        let ([as_cell, peers_cell, peers6_cell], bgp_fields) = bgp.of(&node.hostname);
        rows.push(vec![
            node.hostname.clone(),
            node.ip.to_string(),
            node.ip6.map_or("-".into(), |ip| ip.to_string()),
            state.to_string(),
            as_cell,
            peers_cell,
            peers6_cell,
            if claimed.is_empty() {
                "-".into()
            } else {
                claimed.join(",")
            },
            status.map_or("-".into(), |s| s.routes.to_string()),
            count.to_string(),
            status.map_or("-".into(), |s| {
                s.last_sync.format("%H:%M:%S%.3f").to_string()
            }),
            node.version.clone(),
        ]);
        let mut value = json!({
            "hostname": node.hostname, "ip": node.ip, "ip6": node.ip6, "state": state,
            "blocks": claimed, "endpoints": count, "routes": status.map(|s| s.routes),
            "last_sync": status.map(|s| s.last_sync),
            "started": node.started, "version": node.version,
        });
        if let (Some(all), serde_json::Value::Object(more)) = (value.as_object_mut(), bgp_fields) {
            all.extend(more);
        }
        out.push(value);
    }
    print(format, &NODE_HEADERS, rows, &out);
    Ok(())
}

const NODE_HEADERS: [&str; 12] = [
    "HOSTNAME",
    "IP",
    "IPV6",
    "STATE",
    "AS NUM",
    "BGP PEERS",
    "BGP PEERS V6",
    "BLOCKS",
    "ROUTES",
    "ENDPOINTS",
    "LAST SYNC",
    "VERSION",
];

pub async fn endpoint(cmd: EndpointCommand, etcd: &EtcdArgs, format: Format) -> Result<()> {
    let EndpointCommand::Show { detailed } = cmd;
    let store = etcd.connect().await?;
    let mut endpoints = store.endpoints().await?;
    endpoints.sort_by(|a, b| (&a.host, a.ip).cmp(&(&b.host, b.ip)));
    let networks = store.networks().await?;
    // Docker's name for the network, as `docker network ls` shows it.
    let network_name = |id: &str| {
        networks
            .iter()
            .find(|n| n.id == id)
            .and_then(|n| n.name.clone())
    };
    let id = |s: &str| {
        if detailed {
            s.to_string()
        } else {
            short_id(s).to_string()
        }
    };
    let rows = endpoints
        .iter()
        .map(|e| {
            let mut row = vec![
                e.host.clone(),
                match (detailed, network_name(&e.network_id)) {
                    (false, Some(name)) => name,
                    _ => id(&e.network_id),
                },
                or_dash(e.container.as_deref()),
                id(&e.id),
                format!("{}/32", e.ip),
                e.ip6.map_or("-".into(), |ip6| format!("{ip6}/128")),
            ];
            if detailed {
                row.push(or_dash(e.mac.as_deref()));
                row.push(e.veth.clone());
            }
            row.push(e.state.to_string());
            row
        })
        .collect();
    let mut headers = vec![
        "HOSTNAME",
        "NETWORK",
        "CONTAINER",
        "ENDPOINT ID",
        "ADDRESS",
        "IPV6 ADDRESS",
    ];
    if detailed {
        headers.extend(["MAC", "INTERFACE"]);
    }
    headers.push("STATE");
    print(format, &headers, rows, &endpoints);
    Ok(())
}

pub async fn ipam(cmd: IpamCommand, etcd: &EtcdArgs, format: Format) -> Result<()> {
    let store = etcd.connect().await?;
    let ip = match cmd {
        IpamCommand::Show { ip } => ip,
        IpamCommand::Check(args) => return super::ipam_check::run(args, store, format).await,
        IpamCommand::Release { node } => {
            refuse_if_up(&store, &node).await?;
            let (released, blocks) = Ipam::new(store.clone(), "cli").release_host(&node).await?;
            let mut endpoints = 0;
            for ep in store.host_endpoints(&node).await? {
                endpoints += store.delete_endpoint(&node, &ep.id).await? as usize;
            }
            println!(
                "Released {released} address(es), {blocks} block(s) and {endpoints} endpoint record(s) of {node}"
            );
            return Ok(());
        }
    };
    if let Some(ip) = ip {
        let holder = Ipam::new(store, "cli").holder(ip).await?;
        let rows = vec![match &holder {
            Some(h) => vec![
                ip.to_string(),
                "allocated".into(),
                h.host.clone(),
                or_dash(h.network.as_deref().map(short_id)),
                or_dash(h.endpoint.as_deref().map(short_id)),
                or_dash(h.container.as_deref()),
                h.time.to_rfc3339(),
            ],
            None => vec![
                ip.to_string(),
                "free".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
        }];
        let out = json!({ "ip": ip, "allocated": holder.is_some(), "handle": holder });
        print(
            format,
            &[
                "ADDRESS",
                "STATE",
                "HOST",
                "NETWORK",
                "ENDPOINT",
                "CONTAINER",
                "SINCE",
            ],
            rows,
            &out,
        );
        return Ok(());
    }
    let mut rows = Vec::new();
    let mut out = BTreeMap::new();
    for b in store.blocks().await? {
        let block = b.value;
        rows.push(vec![
            block.cidr.to_string(),
            block.pool.to_string(),
            or_dash(block.affinity.as_deref()),
            format!("{}/{}", block.allocations.len(), block::size(&block.cidr)),
        ]);
        let allocations: BTreeMap<String, String> = block
            .allocated()
            .map(|(ip, h)| (ip.to_string(), describe(h)))
            .collect();
        out.insert(
            block.cidr.to_string(),
            json!({
                "pool": block.pool, "affinity": block.affinity, "allocations": allocations,
            }),
        );
    }
    print(format, &["BLOCK", "POOL", "HOST", "ALLOCATED"], rows, &out);
    Ok(())
}
