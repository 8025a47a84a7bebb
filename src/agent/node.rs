//! What this node records about itself: its addresses in both families,
//! its subnet and its tunnel MAC, found on the host where not given.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result};
use chrono::Utc;
use ipnet::Ipv4Net;

use super::AgentConfig;
use crate::dataplane::Dataplane;
use crate::model::Node;

pub struct Addresses {
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    pub subnet: Option<Ipv4Net>,
}

/// This host's addresses: those given, else read from the host.
pub async fn addresses(dataplane: &Dataplane, config: &AgentConfig) -> Result<Addresses> {
    let ip = match config.ip {
        Some(ip) => ip,
        None => dataplane
            .netlink()
            .host_address()
            .await?
            .context("cannot find this host's address: pass --ip")?,
    };
    let subnet = node_subnet(dataplane, ip, config.subnet).await?;
    let ip6 = match config.ip6 {
        Some(ip6) => {
            anyhow::ensure!(
                crate::dataplane::is_global(ip6),
                "--ip6 {ip6} is not a global unicast address"
            );
            Some(ip6)
        }
        None => dataplane.netlink().ipv6_beside(ip).await?,
    };
    Ok(Addresses { ip, ip6, subnet })
}

/// The subnet recorded for this node: the one given, else `ip`'s own
/// prefix on this host (none if `ip` is not configured here).
async fn node_subnet(
    dataplane: &Dataplane,
    ip: Ipv4Addr,
    given: Option<Ipv4Net>,
) -> Result<Option<Ipv4Net>> {
    if let Some(subnet) = given {
        anyhow::ensure!(
            subnet.contains(&ip),
            "--subnet {subnet} does not hold this host's address {ip}"
        );
        return Ok(Some(subnet.trunc()));
    }
    let prefix = dataplane.netlink().address_prefix(ip).await?;
    Ok(prefix
        .and_then(|p| Ipv4Net::new(ip, p).ok())
        .map(|n| n.trunc()))
}

pub fn record(hostname: &str, addresses: Addresses) -> Node {
    Node {
        hostname: hostname.to_string(),
        ip: addresses.ip,
        ip6: addresses.ip6,
        started: Utc::now(),
        version: crate::VERSION.to_string(),
        subnet: addresses.subnet,
        vxlan_mac: Some(crate::dataplane::vxlan::mac_text(
            &crate::dataplane::vxlan::mac_for(hostname),
        )),
    }
}
