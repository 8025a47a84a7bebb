//! IpamDriver calls, for both families: Docker asks for the IPv4 pool and,
//! on `--ipv6` networks, for the IPv6 pool in separate calls.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use tracing::{info, warn};

use super::{Driver, Error, parse_ip, parse_net};
use crate::dataplane::{GATEWAY, GATEWAY6};
use crate::ipam::{DEFAULT_BLOCK_PREFIX_V6, Released};
use crate::model::Handle;

/// Docker's option key for the gateway, in RequestPool's answer and in
/// RequestAddress's request type.
pub const GATEWAY_OPTION: &str = "com.docker.network.gateway";
const REQUEST_TYPE: &str = "RequestAddressType";
/// The pool reported for networks made without --subnet. libnetwork skips
/// its host-route overlap check for 0.0.0.0/0; reporting the real pool
/// would make dockerd release and re-request it forever once the pool has
/// routes on the host (libnetwork #1386).
const ANY_POOL: &str = "0.0.0.0/0";
const ANY_POOL6: &str = "::/0";

/// The virtual gateway of a family, as Docker takes it (address/prefix).
fn gateway_cidr(v6: bool) -> String {
    match v6 {
        false => format!("{GATEWAY}/32"),
        true => format!("{GATEWAY6}/128"),
    }
}

fn is_virtual_gateway(ip: IpAddr) -> bool {
    ip == IpAddr::V4(GATEWAY) || ip == IpAddr::V6(GATEWAY6)
}

#[derive(Debug)]
pub struct PoolGrant {
    pub pool_id: String,
    pub pool: String,
    pub data: HashMap<String, String>,
}

impl Driver {
    pub async fn request_pool(
        &self,
        pool: &str,
        sub_pool: &str,
        v6: bool,
    ) -> Result<PoolGrant, Error> {
        if !sub_pool.is_empty() {
            return Err(Error::Unsupported(
                "--ip-range (a sub-pool); make a smaller pool with --subnet instead".into(),
            ));
        }
        let data = HashMap::from([(GATEWAY_OPTION.to_string(), gateway_cidr(v6))]);
        if pool.is_empty() {
            let configured = self.config.default_pool.map(IpNet::V4).filter(|_| !v6);
            let pool = self.ipam.default_pool(configured, v6).await?;
            return Ok(PoolGrant {
                pool_id: pool.cidr.to_string(),
                pool: if v6 { ANY_POOL6 } else { ANY_POOL }.to_string(),
                data,
            });
        }
        let cidr = parse_net("subnet", pool)?;
        if cidr.addr().is_ipv6() != v6 {
            return Err(Error::Invalid(format!(
                "subnet {cidr} is not an IPv{} subnet",
                if v6 { 6 } else { 4 }
            )));
        }
        let block_prefix = match cidr {
            IpNet::V4(_) => self.config.block_prefix,
            IpNet::V6(_) => DEFAULT_BLOCK_PREFIX_V6,
        };
        let pool = self.ipam.ensure_pool(cidr, block_prefix).await?;
        Ok(PoolGrant {
            pool_id: pool.cidr.to_string(),
            pool: pool.cidr.to_string(),
            data,
        })
    }

    pub async fn release_pool(&self, pool_id: &str) -> Result<(), Error> {
        // Pools outlive Docker networks: other hosts' networks share them.
        parse_net("pool ID", pool_id)?;
        Ok(())
    }

    /// Allocates a /32 or /128 for an endpoint (or the requested address).
    pub async fn request_address(
        &self,
        pool_id: &str,
        address: &str,
        options: &HashMap<String, String>,
    ) -> Result<String, Error> {
        let cidr = parse_net("pool ID", pool_id)?;
        if options.get(REQUEST_TYPE).map(String::as_str) == Some(GATEWAY_OPTION) {
            // The gateway is virtual; no pool address is spent on it.
            return Ok(gateway_cidr(cidr.addr().is_ipv6()));
        }
        let requested = match address {
            "" => None,
            a => Some(parse_ip("address", a)?),
        };
        let pool = self.ipam.pool(&cidr).await?;
        let ip = self
            .ipam
            .allocate(&pool, requested, Handle::for_host(self.host()))
            .await?;
        info!(%ip, pool = %cidr, "allocated address");
        Ok(format!("{ip}/{}", cidr.max_prefix_len()))
    }

    /// Releases an address this host holds in that pool; releasing a free
    /// one succeeds (Docker retries). An address another host holds is not
    /// ours to free: our hold is already gone (a repair, a `host remove`)
    /// and the address was given again, so this is a no-op with a warning.
    pub async fn release_address(&self, pool_id: &str, address: &str) -> Result<(), Error> {
        let cidr = parse_net("pool ID", pool_id)?;
        let ip = parse_ip("address", address)?;
        if is_virtual_gateway(ip) {
            return Ok(());
        }
        if !cidr.contains(&ip) {
            return Err(crate::ipam::Error::NotInPool { ip, pool: cidr }.into());
        }
        match self.ipam.release_own(ip).await? {
            Released::Released(handle) => {
                info!(%ip, holder = %crate::ipam::describe(&handle), "released address")
            }
            Released::Free => {}
            Released::Foreign(handle) => warn!(
                %ip,
                holder = %crate::ipam::describe(&handle),
                "not releasing an address another host holds"
            ),
        }
        Ok(())
    }
}
