//! The IPv6 half of a dual-stack (`--ipv6`) network: its pool, and each
//! endpoint's /128, checked as the IPv4 ones are.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::{IpNet, Ipv6Net};

use super::{Driver, Error, parse_ip, parse_net};
use crate::dataplane::GATEWAY6;
use crate::model::Network;

/// The IPv6 pool Docker's IPAM gave a network, and its gateway.
pub struct Ipv6Data<'a> {
    pub pool: &'a str,
    pub gateway: &'a str,
}

impl Driver {
    /// The IPv6 pool of a dual-stack network; None for an IPv4-only one.
    pub(super) async fn network_pool6(
        &self,
        data: Option<Ipv6Data<'_>>,
    ) -> Result<Option<Ipv6Net>, Error> {
        let Some(data) = data else { return Ok(None) };
        if !self.firewall.polices_ipv6() {
            return Err(Error::Invalid(
                "IPv6 networks need the nftables firewall backend (--firewall nftables): \
                 the iptables backend does not police IPv6"
                    .into(),
            ));
        }
        if parse_ip("IPv6 gateway", data.gateway)? != IpAddr::V6(GATEWAY6) {
            return Err(Error::Invalid(
                "tabby networks need tabby's IPAM for IPv6 too: add --ipam-driver tabby".into(),
            ));
        }
        let cidr = match data.pool {
            "::/0" => self.ipam.default_pool(None, true).await?.cidr,
            pool => parse_net("IPv6 pool", pool)?,
        };
        let IpNet::V6(pool6) = cidr else {
            return Err(Error::Invalid(format!("IPv6 pool {cidr} is not IPv6")));
        };
        self.ipam.pool(&cidr).await?;
        Ok(Some(pool6))
    }

    /// An endpoint's IPv6 address: required on a dual-stack network,
    /// refused on any other, allocated by tabby's IPAM in the network's
    /// pool.
    pub(super) async fn endpoint_ip6(
        &self,
        network: &Network,
        address6: &str,
    ) -> Result<Option<Ipv6Addr>, Error> {
        let pool6 = match (network.pool6, address6.is_empty()) {
            (None, true) => return Ok(None),
            (None, false) => {
                return Err(Error::Invalid(format!(
                    "network {} is not dual-stack: it takes no IPv6 address",
                    network.id
                )));
            }
            (Some(_), true) => {
                return Err(Error::Invalid(
                    "the endpoint of a dual-stack network has no IPv6 address".into(),
                ));
            }
            (Some(pool6), false) => pool6,
        };
        let IpAddr::V6(ip6) = parse_ip("Interface.AddressIPv6", address6)? else {
            return Err(Error::Invalid(format!(
                "{address6:?} is not an IPv6 address"
            )));
        };
        if !pool6.contains(&ip6) {
            return Err(crate::ipam::Error::NotInPool {
                ip: ip6.into(),
                pool: pool6.into(),
            }
            .into());
        }
        self.refuse_unallocated(ip6.into()).await?;
        Ok(Some(ip6))
    }
}
