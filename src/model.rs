//! The objects tabby keeps in its datastore. Plain data: no I/O here.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

pub mod bgp;
mod checks;
mod family;
pub mod galera;

pub use bgp::{BgpConfig, BgpPeer, BgpSettings, BgpStatus, NodeBgp};
pub use checks::unicast_mac;

/// An address pool that Docker networks draw /32s (IPv6: /128s) from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub cidr: IpNet,
    /// Prefix length of the blocks hosts claim from this pool.
    pub block_prefix: u8,
    pub created: DateTime<Utc>,
    /// Where traffic between hosts is encapsulated (absent: never).
    #[serde(default, skip_serializing_if = "VxlanMode::is_never")]
    pub vxlan: VxlanMode,
}

/// Calico's `vxlanMode`: which of a pool's cross-host traffic goes through
/// the VXLAN tunnel instead of being routed as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum VxlanMode {
    /// Routed, never encapsulated.
    #[default]
    Never,
    /// Encapsulated towards hosts on another subnet only.
    CrossSubnet,
    /// Encapsulated towards every other host.
    Always,
}

impl VxlanMode {
    pub fn is_never(&self) -> bool {
        *self == VxlanMode::Never
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            VxlanMode::Never => "never",
            VxlanMode::CrossSubnet => "cross-subnet",
            VxlanMode::Always => "always",
        }
    }
}

/// Who holds an address. Calico's libnetwork allocations carried no handle,
/// which is why leaked addresses could never be traced back to a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub time: DateTime<Utc>,
}

impl Handle {
    pub fn for_host(host: &str) -> Self {
        Handle {
            host: host.to_string(),
            network: None,
            endpoint: None,
            container: None,
            time: Utc::now(),
        }
    }
}

/// A slice of a pool claimed by one host (its affinity). Allocations are
/// keyed by the address's offset inside the block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub cidr: IpNet,
    pub pool: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    #[serde(default)]
    pub allocations: BTreeMap<u32, Handle>,
}

/// A Docker network backed by tabby on one host (Docker networks of a
/// remote driver are local-scope, so each host has its own ID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub host: String,
    pub pool: Ipv4Net,
    /// The IPv6 pool of a dual-stack (`--ipv6`) network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool6: Option<Ipv6Net>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    pub created: DateTime<Utc>,
    /// Docker's name for it, learnt from the Engine API after CreateNetwork
    /// (which does not carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Made without a profile option: its profile follows its name once
    /// the name is known. Networks from before names were learnt keep
    /// their ID-named profile.
    #[serde(default)]
    pub named_profile: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointState {
    /// Recorded by CreateEndpoint; no interface yet.
    Created,
    /// Join made the veth pair and the host route.
    Joined,
}

impl std::fmt::Display for EndpointState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EndpointState::Created => "created",
            EndpointState::Joined => "joined",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub network_id: String,
    pub host: String,
    pub ip: Ipv4Addr,
    /// The /128 of an endpoint on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// Host side of the veth pair.
    pub veth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub state: EndpointState,
    pub created: DateTime<Utc>,
    /// Profiles whose rules apply to this endpoint, in order.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// The container's `tabby.*` labels (e.g. `tabby.mysql.role`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Docker's SandboxKey, set at Join: the endpoints that share one are
    /// the interfaces of one container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// The virtual gateway this interface was given at Join: one per
    /// interface of a container, so their routes never collide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
}

#[cfg(test)]
impl Endpoint {
    /// A joined endpoint for unit tests; override fields with `..`.
    pub fn for_test(id: &str, host: &str, ip: &str) -> Endpoint {
        Endpoint {
            id: id.into(),
            network_id: "n".into(),
            host: host.into(),
            ip: ip.parse().expect("test address"),
            ip6: None,
            veth: format!("tabby{id}"),
            mac: None,
            container: None,
            state: EndpointState::Joined,
            created: Utc::now(),
            profiles: vec![],
            labels: BTreeMap::new(),
            sandbox: None,
            gateway: None,
        }
    }
}

/// A host running `tabby agent`. Liveness is a separate leased key, so a
/// stopped agent still shows, as down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub hostname: String,
    pub ip: Ipv4Addr,
    /// This host's IPv6 address (absent: none, or an agent from before
    /// dual-stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    pub started: DateTime<Utc>,
    pub version: String,
    /// The subnet `ip` is on: peers outside it are "another subnet" for
    /// `--vxlan cross-subnet` (absent: every peer counts as on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Ipv4Net>,
    /// The MAC of this host's `tabby.vxlan` device; its tunnel address is
    /// `ip` (absent: an agent from before VXLAN, never tunnelled to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_mac: Option<String>,
}

/// A network defined once for every host (`tabby network create`); each
/// agent makes the matching local Docker network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDef {
    pub name: String,
    pub subnet: Ipv4Net,
    /// The IPv6 subnet of a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    pub created: DateTime<Utc>,
}

/// One host's Docker network for a `NetworkDef`, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub updated: DateTime<Utc>,
}

/// What an agent last did to its host's routing table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub routes: usize,
    pub last_sync: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

impl Protocol {
    /// The name every tool (iptables, nft) and tabby's keys use.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

/// `first..=last`; a single port has first == last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// One side (`from` or `to`) of a rule. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMatch {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<IpNet>,
}

/// A calicoctl v0.x rule: `allow tcp from tag B to ports 3306`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default)]
    pub from: RuleMatch,
    #[serde(default)]
    pub to: RuleMatch,
}

/// Who may reach a set of endpoints, and where they may go. Anything no
/// rule allows is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub tags: std::collections::BTreeSet<String>,
    #[serde(default)]
    pub inbound: Vec<Rule>,
    #[serde(default)]
    pub outbound: Vec<Rule>,
}

/// A port of an endpoint made reachable on its host's addresses (DNAT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    pub protocol: Protocol,
    /// The endpoint's port.
    pub port: u16,
    /// The port on the host's addresses.
    pub host_port: u16,
    /// Container name, endpoint ID or address the exposure follows.
    pub target: String,
    /// Only traffic arriving on this interface (default: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Set for `docker run -p`: the endpoint whose Revoke call removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_endpoint: Option<String>,
    /// Only on this address of the host (`-p A:…`, `--host-ip A`); `::`
    /// means every IPv6 address; none means every address of both
    /// families. Records written before it decode as none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<std::net::IpAddr>,
}

impl Exposure {
    /// The key it is stored under: one exposure per protocol and host port
    /// and target.
    pub fn id(&self) -> String {
        let proto = self.protocol.name();
        match self.host_ip {
            // Unchanged for every address, so older records keep their key.
            None => format!("{proto}-{}-{}", self.host_port, self.target),
            Some(ip) => {
                let addr = std::net::SocketAddr::new(ip, self.host_port);
                format!("{proto}-{addr}-{}", self.target)
            }
        }
    }

    pub fn matches(&self, endpoint: &Endpoint) -> bool {
        endpoint.container.as_deref() == Some(self.target.as_str())
            || endpoint.id == self.target
            || endpoint.ip.to_string() == self.target
            || endpoint.ip6.is_some_and(|ip| ip.to_string() == self.target)
    }
}

/// An operator's declaration that a label-driven MySQL cluster may be
/// bootstrapped, and by which containers (`tabby mysql cluster create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MysqlDeclaration {
    pub name: String,
    /// Confirmed members: `container` (any host) or `container@host`.
    /// Labelled containers not listed here are left alone.
    #[serde(default)]
    pub members: Vec<String>,
    pub created: DateTime<Utc>,
}

/// A replicated MySQL/MariaDB cluster as tabby last set it up. Members are
/// container names (or addresses); credentials are never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MysqlCluster {
    pub name: String,
    pub master: String,
    pub replicas: Vec<String>,
    pub repl_user: String,
    /// Host patterns the replication account was made for.
    #[serde(default)]
    pub repl_hosts: Vec<String>,
    pub updated: DateTime<Utc>,
}
