//! BGP settings as calicoctl shaped them: a cluster-wide default AS and
//! node-to-node mesh switch, per-node AS and route-reflector role, and
//! peers (global, or of one node). Plus what each agent reports of its
//! sessions.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validate::{self as v, Validate, ValidationError, record};

/// Calico's default AS number (the first private 16-bit AS).
pub const DEFAULT_AS: u32 = 64512;

/// Cluster-wide settings. Absent from etcd means the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_as: Option<u32>,
    #[serde(default = "mesh_default")]
    pub mesh: bool,
}

fn mesh_default() -> bool {
    true
}

impl Default for BgpConfig {
    fn default() -> Self {
        BgpConfig {
            default_as: None,
            mesh: true,
        }
    }
}

impl BgpConfig {
    pub fn asn(&self) -> u32 {
        self.default_as.unwrap_or(DEFAULT_AS)
    }
}

/// One node's settings; absent means it inherits the default AS and is no
/// reflector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeBgp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Set on route reflectors only: their cluster ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_reflector: Option<Ipv4Addr>,
}

/// A BGP speaker outside tabby (a router) that hosts peer with: every host
/// for a global peer, one host for a node peer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BgpPeer {
    pub ip: Ipv4Addr,
    pub asn: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// What an agent last saw of its BGP sessions (for `tabby node show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpStatus {
    pub established: usize,
    pub configured: usize,
    /// Sessions whose IPv6 channel is up.
    #[serde(default)]
    pub established6: usize,
    pub updated: DateTime<Utc>,
}

/// Everything a host's BIRD configuration is rendered from, read at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgpSettings {
    pub config: BgpConfig,
    /// Hostname -> its settings; hosts without a record inherit.
    pub nodes: BTreeMap<String, NodeBgp>,
    pub peers: Vec<BgpPeer>,
}

/// AS numbers a speaker may hold: not 0, not AS_TRANS (23456), not the
/// reserved 65535 and 4294967295 (RFC 7300).
pub fn asn(value: u32) -> Result<(), ValidationError> {
    if matches!(value, 0 | 23456 | 65535 | u32::MAX) {
        return Err(record(
            "AS number",
            format!("{value} is reserved (use 1-4294967294, not 23456 or 65535)"),
        ));
    }
    Ok(())
}

/// An address a BGP session can be opened to.
pub fn peer_ip(ip: Ipv4Addr) -> Result<(), ValidationError> {
    if ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_link_local()
    {
        return Err(record(
            "BGP peer",
            format!("{ip} is not a unicast address a session can reach"),
        ));
    }
    Ok(())
}

/// A route reflector cluster ID: a dotted quad, not 0.0.0.0.
pub fn cluster_id(id: Ipv4Addr) -> Result<(), ValidationError> {
    if id.is_unspecified() {
        return Err(record("cluster ID", "0.0.0.0 is not a cluster ID"));
    }
    Ok(())
}

impl Validate for BgpConfig {
    fn validate(&self) -> Result<(), ValidationError> {
        self.default_as.map_or(Ok(()), asn)
    }
}

impl Validate for NodeBgp {
    fn validate(&self) -> Result<(), ValidationError> {
        self.asn.map_or(Ok(()), asn)?;
        self.route_reflector.map_or(Ok(()), cluster_id)
    }
}

impl Validate for BgpPeer {
    fn validate(&self) -> Result<(), ValidationError> {
        asn(self.asn)?;
        peer_ip(self.ip)?;
        self.node.as_deref().map_or(Ok(()), v::hostname)
    }
}

impl Validate for BgpStatus {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.established > self.configured {
            return Err(record(
                "BGP status",
                "more sessions established than configured",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_as_numbers_are_refused() {
        for bad in [0, 23456, 65535, u32::MAX] {
            assert!(asn(bad).is_err(), "{bad}");
        }
        for good in [1, 64512, 65534, 4_200_000_000] {
            assert!(asn(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_missing_config_means_mesh_on_and_calicos_default_as() {
        let config: BgpConfig = serde_json::from_str("{}").unwrap();
        assert!(config.mesh);
        assert_eq!(config.asn(), 64512);
    }
}
