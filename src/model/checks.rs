//! `Validate` for every record type: what a record read back from etcd
//! must satisfy before its fields reach routes, links or firewall rules.

use std::net::Ipv4Addr;

use ipnet::IpNet;

use super::{
    Block, Endpoint, Exposure, Handle, MysqlCluster, MysqlDeclaration, Network, NetworkDef,
    NetworkStatus, Node, NodeStatus, Pool, Profile, Protocol,
};
use crate::validate::{self as v, Validate, ValidationError, record};

fn network_address(kind: &'static str, cidr: impl Into<IpNet>) -> Result<(), ValidationError> {
    let cidr: IpNet = cidr.into();
    if cidr.trunc() == cidr {
        Ok(())
    } else {
        Err(record(kind, format!("{cidr} is not a network address")))
    }
}

/// An address a route may point at or a container may hold.
fn unicast(kind: &'static str, ip: Ipv4Addr) -> Result<(), ValidationError> {
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
        return Err(record(kind, format!("{ip} is not a unicast address")));
    }
    Ok(())
}

impl Validate for Pool {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.block_prefix < self.cidr.prefix_len() {
            return Err(record(
                "pool",
                format!("blocks of {} wider than it", self.cidr),
            ));
        }
        v::pool(self.cidr, self.block_prefix)
    }
}

impl Validate for Handle {
    fn validate(&self) -> Result<(), ValidationError> {
        v::hostname(&self.host)?;
        if let Some(id) = &self.network {
            v::docker_id("network ID", id)?;
        }
        if let Some(id) = &self.endpoint {
            v::docker_id("endpoint ID", id)?;
        }
        if let Some(name) = &self.container {
            v::container_name(name)?;
        }
        Ok(())
    }
}

impl Validate for Block {
    fn validate(&self) -> Result<(), ValidationError> {
        network_address("block", self.cidr)?;
        if !self.pool.contains(&self.cidr) {
            return Err(record(
                "block",
                format!("{} is outside its pool", self.cidr),
            ));
        }
        if let Some(host) = &self.affinity {
            v::hostname(host)?;
        }
        let size = crate::ipam::block::size(&self.cidr);
        if let Some(ord) = self.allocations.keys().find(|o| u128::from(**o) >= size) {
            return Err(record(
                "block",
                format!("offset {ord} outside {}", self.cidr),
            ));
        }
        self.allocations.values().try_for_each(Validate::validate)
    }
}

impl Validate for Network {
    fn validate(&self) -> Result<(), ValidationError> {
        v::docker_id("network ID", &self.id)?;
        v::hostname(&self.host)?;
        network_address("network pool", self.pool)?;
        if let Some(p) = self.options.get(crate::driver::PROFILE_OPTION) {
            v::profile_name("profile name", p)?;
        }
        Ok(())
    }
}

impl Validate for Endpoint {
    fn validate(&self) -> Result<(), ValidationError> {
        v::docker_id("endpoint ID", &self.id)?;
        v::docker_id("network ID", &self.network_id)?;
        v::hostname(&self.host)?;
        unicast("endpoint address", self.ip)?;
        // The veth name is derived, never trusted: it reaches `ip link`
        // and iptables text.
        if self.veth != crate::dataplane::host_veth_name(&self.id) {
            return Err(record(
                "endpoint",
                format!("veth {:?} is not its own", self.veth),
            ));
        }
        for p in &self.profiles {
            v::profile_name("profile name", p)?;
        }
        if let Some(name) = &self.container {
            v::container_name(name)?;
        }
        if let Some(gateway) = self.gateway
            && !crate::dataplane::is_gateway(gateway)
        {
            return Err(record(
                "endpoint",
                format!("gateway {gateway} is not one of tabby's"),
            ));
        }
        if let Some(sandbox) = &self.sandbox {
            v::sandbox_key(sandbox)?;
        }
        Ok(())
    }
}

impl Validate for Node {
    fn validate(&self) -> Result<(), ValidationError> {
        v::hostname(&self.hostname)?;
        unicast("node address", self.ip)?;
        if let Some(ip6) = self.ip6
            && !crate::dataplane::is_global(ip6)
        {
            return Err(record(
                "node IPv6 address",
                format!("{ip6} is not a global unicast address"),
            ));
        }
        if let Some(subnet) = self.subnet
            && !subnet.contains(&self.ip)
        {
            return Err(record(
                "node subnet",
                format!("{subnet} does not hold the node's address {}", self.ip),
            ));
        }
        if let Some(mac) = &self.vxlan_mac {
            unicast_mac(mac)?;
        }
        Ok(())
    }
}

/// A MAC a neighbour and FDB entry may carry: six hex bytes, unicast
/// (the group bit of the first byte clear), not all zeros.
pub fn unicast_mac(mac: &str) -> Result<[u8; 6], ValidationError> {
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| record("VXLAN MAC", format!("{mac:?} is not a MAC address")))?;
    let Ok(bytes) = <[u8; 6]>::try_from(bytes) else {
        return Err(record("VXLAN MAC", format!("{mac:?} is not six bytes")));
    };
    if mac.len() != 17 || bytes[0] & 1 == 1 || bytes == [0; 6] {
        return Err(record("VXLAN MAC", format!("{mac} is not a unicast MAC")));
    }
    Ok(bytes)
}

impl Validate for NetworkDef {
    fn validate(&self) -> Result<(), ValidationError> {
        v::name("network name", &self.name)?;
        network_address("subnet", self.subnet)?;
        if let Some(subnet6) = self.subnet6 {
            network_address("IPv6 subnet", subnet6)?;
        }
        if let Some(p) = &self.profile {
            v::profile_name("profile name", p)?;
        }
        Ok(())
    }
}

impl Validate for Profile {
    fn validate(&self) -> Result<(), ValidationError> {
        v::profile_name("profile name", &self.name)?;
        for tag in &self.tags {
            v::profile_name("tag", tag)?;
        }
        self.inbound
            .iter()
            .chain(&self.outbound)
            .try_for_each(v::rule)
    }
}

impl Validate for Exposure {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.port == 0 || self.host_port == 0 {
            return Err(record("exposure", "ports run from 1 to 65535"));
        }
        if self.protocol == Protocol::Icmp {
            return Err(record("exposure", "only tcp and udp ports can be exposed"));
        }
        v::container_name(&self.target)?;
        if let Some(iface) = &self.interface {
            v::interface(iface)?;
        }
        if let Some(id) = &self.docker_endpoint {
            v::docker_id("endpoint ID", id)?;
        }
        Ok(())
    }
}

impl Validate for MysqlCluster {
    fn validate(&self) -> Result<(), ValidationError> {
        v::name("cluster name", &self.name)
    }
}

impl Validate for MysqlDeclaration {
    fn validate(&self) -> Result<(), ValidationError> {
        v::name("cluster name", &self.name)
    }
}

impl Validate for NodeStatus {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

impl Validate for NetworkStatus {
    fn validate(&self) -> Result<(), ValidationError> {
        v::hostname(&self.host)?;
        match &self.docker_id {
            Some(id) => v::docker_id("network ID", id),
            None => Ok(()),
        }
    }
}
