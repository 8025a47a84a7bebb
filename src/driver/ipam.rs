//! IpamDriver calls.

use std::collections::HashMap;

use tracing::{info, warn};

use super::{Driver, Error, parse_address, parse_cidr};
use crate::dataplane::GATEWAY;
use crate::ipam::Released;
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
        if v6 {
            return Err(Error::Unsupported("IPv6".into()));
        }
        if !sub_pool.is_empty() {
            return Err(Error::Unsupported(
                "--ip-range (a sub-pool); make a smaller pool with --subnet instead".into(),
            ));
        }
        let data = HashMap::from([(GATEWAY_OPTION.to_string(), format!("{GATEWAY}/32"))]);
        if pool.is_empty() {
            let pool = self.ipam.default_pool(self.config.default_pool).await?;
            return Ok(PoolGrant {
                pool_id: pool.cidr.to_string(),
                pool: ANY_POOL.to_string(),
                data,
            });
        }
        let cidr = parse_cidr("subnet", pool)?;
        let pool = self
            .ipam
            .ensure_pool(cidr, self.config.block_prefix)
            .await?;
        Ok(PoolGrant {
            pool_id: pool.cidr.to_string(),
            pool: pool.cidr.to_string(),
            data,
        })
    }

    pub async fn release_pool(&self, pool_id: &str) -> Result<(), Error> {
        // Pools outlive Docker networks: other hosts' networks share them.
        parse_cidr("pool ID", pool_id)?;
        Ok(())
    }

    /// Allocates a /32 for an endpoint (or the requested address).
    pub async fn request_address(
        &self,
        pool_id: &str,
        address: &str,
        options: &HashMap<String, String>,
    ) -> Result<String, Error> {
        let cidr = parse_cidr("pool ID", pool_id)?;
        if options.get(REQUEST_TYPE).map(String::as_str) == Some(GATEWAY_OPTION) {
            // The gateway is virtual; no pool address is spent on it.
            return Ok(format!("{GATEWAY}/32"));
        }
        let requested = match address {
            "" => None,
            a => Some(parse_address("address", a)?),
        };
        let pool = self.ipam.pool(&cidr).await?;
        let ip = self
            .ipam
            .allocate(&pool, requested, Handle::for_host(self.host()))
            .await?;
        info!(%ip, pool = %cidr, "allocated address");
        Ok(format!("{ip}/32"))
    }

    /// Releases an address this host holds in that pool; releasing a free
    /// one succeeds (Docker retries). An address another host holds is not
    /// ours to free: our hold is already gone (a repair, a `host remove`)
    /// and the address was given again, so this is a no-op with a warning.
    pub async fn release_address(&self, pool_id: &str, address: &str) -> Result<(), Error> {
        let cidr = parse_cidr("pool ID", pool_id)?;
        let ip = parse_address("address", address)?;
        if ip == GATEWAY {
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
