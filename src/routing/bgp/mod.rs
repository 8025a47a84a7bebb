//! BGP mode: which sessions a host's BIRD opens and what it announces,
//! derived from the datastore alone (pure; `render` writes it as BIRD
//! configuration, `crate::routing::bird` runs BIRD).

mod render;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::{BgpSettings, Node};

pub use render::render;

/// Why a session exists; `tabby bgp status` prints it as the peer type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// Node-to-node mesh.
    Mesh,
    /// A peer every node has.
    Global,
    /// A peer of this node only.
    Node,
    /// To or from a route reflector.
    Reflector,
}

impl SessionKind {
    /// BIRD protocol names start with this, so a status line tells its kind.
    pub fn prefix(self) -> &'static str {
        match self {
            SessionKind::Mesh => "mesh",
            SessionKind::Global => "global",
            SessionKind::Node => "node",
            SessionKind::Reflector => "rr",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SessionKind::Mesh => "mesh",
            SessionKind::Global => "global",
            SessionKind::Node => "node",
            SessionKind::Reflector => "reflector",
        }
    }

    /// The kind and peer address of one of tabby's BIRD protocols.
    pub fn parse_protocol(name: &str) -> Option<(SessionKind, Ipv4Addr)> {
        let (prefix, ip) = name.split_once('_')?;
        let kind = [Self::Mesh, Self::Global, Self::Node, Self::Reflector]
            .into_iter()
            .find(|k| k.prefix() == prefix)?;
        Some((kind, ip.replace('_', ".").parse().ok()?))
    }
}

/// One BGP session of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub kind: SessionKind,
    pub peer: Ipv4Addr,
    pub peer_as: u32,
    /// This host reflects the peer's routes (it is the peer's reflector).
    pub rr_client: bool,
    /// Set on a reflector's sessions.
    pub cluster_id: Option<Ipv4Addr>,
}

impl Session {
    pub fn protocol_name(&self) -> String {
        format!(
            "{}_{}",
            self.kind.prefix(),
            self.peer.to_string().replace('.', "_")
        )
    }
}

/// What one host's BIRD is configured from.
pub struct BgpView<'a> {
    pub host: &'a str,
    pub settings: &'a BgpSettings,
    /// Every registered node, up or down: a node whose agent restarts
    /// keeps its sessions, so graceful restart can hold its routes.
    pub nodes: &'a [Node],
    pub pools: &'a [IpNet],
    /// Blocks this host claimed.
    pub own_blocks: &'a [IpNet],
    /// Hold time, and how long peers keep this host's routes while it
    /// restarts (seconds).
    pub hold_time: u16,
}

impl BgpView<'_> {
    pub fn asn_of(&self, host: &str) -> u32 {
        self.settings
            .nodes
            .get(host)
            .and_then(|n| n.asn)
            .unwrap_or_else(|| self.settings.config.asn())
    }

    fn reflector(&self, host: &str) -> Option<Ipv4Addr> {
        self.settings
            .nodes
            .get(host)
            .and_then(|n| n.route_reflector)
    }

    fn me(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| n.hostname == self.host)
    }
}

/// This host's sessions, one per peer address: where a node peer and a
/// global peer share an address the node's own wins, and no peer shadows
/// another node (the mesh or reflectors reach it).
pub fn sessions(view: &BgpView) -> Vec<Session> {
    let Some(me) = view.me() else {
        return Vec::new();
    };
    let my_cluster = view.reflector(view.host);
    let my_as = view.asn_of(view.host);
    let mut by_peer: BTreeMap<Ipv4Addr, Session> = BTreeMap::new();
    for node in view
        .nodes
        .iter()
        .filter(|n| n.hostname != view.host && n.ip != me.ip)
    {
        let theirs = view.reflector(&node.hostname);
        // Reflectors peer with every node; the mesh, where on, joins the
        // rest.
        let kind = if my_cluster.is_some() || theirs.is_some() {
            SessionKind::Reflector
        } else if view.settings.config.mesh {
            SessionKind::Mesh
        } else {
            continue;
        };
        let peer_as = view.asn_of(&node.hostname);
        by_peer.insert(
            node.ip,
            Session {
                kind,
                peer: node.ip,
                peer_as,
                // Reflection is an iBGP matter: BIRD refuses it on eBGP.
                rr_client: my_cluster.is_some() && theirs.is_none() && peer_as == my_as,
                cluster_id: my_cluster.filter(|_| peer_as == my_as),
            },
        );
    }
    let node_ips: Vec<Ipv4Addr> = view.nodes.iter().map(|n| n.ip).collect();
    let mut peers: Vec<_> = view.settings.peers.iter().collect();
    // Global first, so that a node's own peer replaces it.
    peers.sort_by_key(|p| p.node.is_some());
    for peer in peers {
        let kind = match peer.node.as_deref() {
            None => SessionKind::Global,
            Some(h) if h == view.host => SessionKind::Node,
            Some(_) => continue,
        };
        if node_ips.contains(&peer.ip) {
            continue;
        }
        by_peer.insert(
            peer.ip,
            Session {
                kind,
                peer: peer.ip,
                peer_as: peer.asn,
                rr_client: false,
                cluster_id: None,
            },
        );
    }
    by_peer.into_values().collect()
}
