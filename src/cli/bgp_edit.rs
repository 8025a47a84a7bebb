//! The BGP changes the CLI makes, each checked in full before anything is
//! written: a refused command leaves etcd exactly as it was, so an agent
//! never renders half of an operator's mistake into BIRD.

use std::net::Ipv4Addr;

use crate::model::bgp as rules;
use crate::model::{BgpConfig, BgpPeer, Node, NodeBgp};
use crate::store::{self, Store};
use crate::validate::ValidationError;

#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("invalid AS number {0:?}: use a plain number from 1 to 4294967294")]
    NotAnAs(String),
    #[error("invalid BGP peer {0:?}: not an IPv4 address")]
    NotAnAddress(String),
    #[error(
        "invalid BGP peer {ip}: it is inside tabby pool {pool}, whose addresses go to containers"
    )]
    InPool { ip: Ipv4Addr, pool: ipnet::IpNet },
    #[error("invalid BGP peer {ip}: is node {host}'s address: the mesh/reflectors peer with nodes")]
    NodeAddress { ip: Ipv4Addr, host: String },
    #[error("no node {0}: nodes register when their agent starts (see `tabby node show`)")]
    NoNode(String),
    #[error("no BGP peer {ip} {scope}")]
    NoPeer { ip: Ipv4Addr, scope: String },
    #[error("invalid cluster ID {0:?}: use a dotted quad such as 10.0.0.1")]
    NotAClusterId(String),
    #[error("--cluster-id with --off: a cluster ID on a node that is not a reflector")]
    ClusterIdWithOff,
    #[error(
        "route-reflector needs --cluster-id A.B.C.D (make the node a reflector) or --off (stop being one)"
    )]
    NoReflectorChoice,
    #[error("give the node's AS number, or `inherit` for the default AS")]
    NoAs,
    #[error("mesh is on or off, not {0:?}")]
    NotOnOff(String),
}

/// A plain AS number that a speaker may hold. asdot (`1.10`) is refused:
/// BIRD's configuration takes plain numbers, and one spelling keeps
/// records comparable.
pub fn parse_as(word: &str) -> Result<u32, Refused> {
    // `+5` and ` 5` parse as u32 but are not what anyone types for an AS.
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refused::NotAnAs(word.to_string()));
    }
    let asn = word
        .parse::<u32>()
        .map_err(|_| Refused::NotAnAs(word.to_string()))?;
    rules::asn(asn)?;
    Ok(asn)
}

fn parse_ip(word: &str) -> Result<Ipv4Addr, Refused> {
    word.parse()
        .map_err(|_| Refused::NotAnAddress(word.to_string()))
}

pub fn parse_cluster_id(word: &str) -> Result<Ipv4Addr, Refused> {
    let id = word
        .parse()
        .map_err(|_| Refused::NotAClusterId(word.to_string()))?;
    rules::cluster_id(id)?;
    Ok(id)
}

pub fn parse_mesh(word: &str) -> Result<bool, Refused> {
    match word {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(Refused::NotOnOff(other.to_string())),
    }
}

/// The registered nodes, refused unless `host` (when given) is one of them.
async fn nodes_with(store: &Store, host: Option<&str>) -> Result<Vec<Node>, Refused> {
    let nodes = store.nodes().await?;
    match host {
        Some(h) if !nodes.iter().any(|n| n.hostname == h) => Err(Refused::NoNode(h.to_string())),
        _ => Ok(nodes),
    }
}

fn scope(node: Option<&str>) -> String {
    match node {
        Some(h) => format!("of node {h}"),
        None => "(global)".to_string(),
    }
}

/// Sets the default AS; false when it already was that.
pub async fn set_default_as(store: &Store, word: &str) -> Result<bool, Refused> {
    let asn = parse_as(word)?;
    let config = store.bgp_config().await?;
    if config.default_as == Some(asn) {
        return Ok(false);
    }
    let new = BgpConfig {
        default_as: Some(asn),
        ..config
    };
    store.put_bgp_config(&new).await?;
    Ok(true)
}

/// Turns the node-to-node mesh on or off; false when it already was.
pub async fn set_mesh(store: &Store, word: &str) -> Result<bool, Refused> {
    let mesh = parse_mesh(word)?;
    let config = store.bgp_config().await?;
    if config.mesh == mesh {
        return Ok(false);
    }
    store.put_bgp_config(&BgpConfig { mesh, ..config }).await?;
    Ok(true)
}

/// What `peer add` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerChange {
    Added,
    /// The peer was there with another AS.
    AsChanged {
        from: u32,
    },
    Unchanged,
}

/// Adds a global peer (`node` None) or one node's peer.
pub async fn add_peer(
    store: &Store,
    ip: &str,
    asn: &str,
    node: Option<&str>,
) -> Result<PeerChange, Refused> {
    let ip = parse_ip(ip)?;
    rules::peer_ip(ip)?;
    let asn = parse_as(asn)?;
    let nodes = nodes_with(store, node).await?;
    // Nodes already peer with each other (mesh or reflectors): a second,
    // explicit session to the same address would fight the first.
    if let Some(n) = nodes.iter().find(|n| n.ip == ip) {
        return Err(Refused::NodeAddress {
            ip,
            host: n.hostname.clone(),
        });
    }
    // Pool addresses belong to containers: a router there is a mistake,
    // and its routes would shadow the containers' /32s.
    if let Some(pool) = store
        .pools()
        .await?
        .iter()
        .find(|p| p.value.cidr.contains(&std::net::IpAddr::V4(ip)))
    {
        return Err(Refused::InPool {
            ip,
            pool: pool.value.cidr,
        });
    }
    let peer = BgpPeer {
        ip,
        asn,
        node: node.map(str::to_string),
    };
    let before = store
        .bgp_peers()
        .await?
        .into_iter()
        .find(|p| p.ip == ip && p.node == peer.node);
    if !store.put_bgp_peer(&peer).await? {
        return Ok(PeerChange::Unchanged);
    }
    Ok(match before {
        Some(old) if old.asn != asn => PeerChange::AsChanged { from: old.asn },
        _ => PeerChange::Added,
    })
}

/// Removes a peer. A record of a node that is no longer registered (left
/// by an older tabby, or written by hand) can still be removed, so the
/// node must be registered only when there is nothing to remove.
pub async fn remove_peer(store: &Store, ip: &str, node: Option<&str>) -> Result<(), Refused> {
    let ip = parse_ip(ip)?;
    if store.delete_bgp_peer(ip, node).await? {
        return Ok(());
    }
    nodes_with(store, node).await?;
    Err(Refused::NoPeer {
        ip,
        scope: scope(node),
    })
}

/// Stores a registered node's settings changed by `change`; false when
/// they did not change.
async fn change_node(
    store: &Store,
    host: &str,
    change: impl FnOnce(&mut NodeBgp),
) -> Result<bool, Refused> {
    nodes_with(store, Some(host)).await?;
    let old = store.bgp_nodes().await?.remove(host).unwrap_or_default();
    let mut new = old.clone();
    change(&mut new);
    if new == old {
        return Ok(false);
    }
    store.put_bgp_node(host, &new).await?;
    Ok(true)
}

/// Gives a node its own AS (`Some(N)`), or back to the default (`inherit`).
pub async fn set_node_as(store: &Store, host: &str, word: &str) -> Result<bool, Refused> {
    let asn = match word {
        "inherit" => None,
        n => Some(parse_as(n)?),
    };
    change_node(store, host, |node| node.asn = asn).await
}

/// Makes a node a route reflector with `cluster_id`, or (`off`) no longer one.
pub async fn set_route_reflector(
    store: &Store,
    host: &str,
    cluster_id: Option<&str>,
    off: bool,
) -> Result<bool, Refused> {
    let reflector = match (cluster_id, off) {
        (Some(_), true) => return Err(Refused::ClusterIdWithOff),
        (None, false) => return Err(Refused::NoReflectorChoice),
        (Some(id), false) => Some(parse_cluster_id(id)?),
        (None, true) => None,
    };
    change_node(store, host, |node| node.route_reflector = reflector).await
}

#[cfg(test)]
#[path = "bgp_edit_tests.rs"]
mod tests;
