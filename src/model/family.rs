//! The family of pools, for the paths that act on IPv4 only.

use ipnet::{IpNet, Ipv4Net};

use super::Pool;

impl Pool {
    /// The CIDR, if the pool is IPv4: what the IPv4-only paths (a
    /// network's IPv4 pool, MySQL's address resolution) act on.
    pub fn v4(&self) -> Option<Ipv4Net> {
        match self.cidr {
            IpNet::V4(net) => Some(net),
            IpNet::V6(_) => None,
        }
    }
}
