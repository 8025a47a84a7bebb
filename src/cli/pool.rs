use anyhow::Result;
use clap::Subcommand;
use ipnet::IpNet;
use serde_json::json;

use super::output::print;
use super::{EtcdArgs, Format};
use crate::ipam::{DEFAULT_BLOCK_PREFIX, DEFAULT_BLOCK_PREFIX_V6, Ipam, block};
use crate::model::VxlanMode;

#[derive(Subcommand, Debug)]
pub enum PoolCommand {
    /// Add an address pool.
    Add {
        cidr: IpNet,
        /// Prefix length of the blocks hosts claim [default: 26 for
        /// IPv4, 122 for IPv6: 64 addresses either way].
        #[arg(long)]
        block_size: Option<u8>,
        /// Which cross-host traffic goes through the VXLAN tunnel.
        #[arg(long, value_enum, default_value_t = VxlanMode::Never)]
        vxlan: VxlanMode,
    },
    /// Change a pool's settings (in use or not; every host converges).
    Set {
        cidr: IpNet,
        #[arg(long, value_enum)]
        vxlan: VxlanMode,
    },
    /// List pools with their use.
    Show,
    /// Remove a pool (refused while addresses are allocated).
    Remove { cidr: IpNet },
}

pub async fn run(cmd: PoolCommand, etcd: &EtcdArgs, format: Format) -> Result<()> {
    let store = etcd.connect().await?;
    // The CLI claims nothing; the host name only labels handles.
    let ipam = Ipam::new(store.clone(), "cli");
    match cmd {
        PoolCommand::Add {
            cidr,
            block_size,
            vxlan,
        } => {
            let block_size = block_size.unwrap_or(match cidr {
                IpNet::V4(_) => DEFAULT_BLOCK_PREFIX,
                IpNet::V6(_) => DEFAULT_BLOCK_PREFIX_V6,
            });
            let pool = ipam.add_pool_with(cidr, block_size, vxlan).await?;
            println!(
                "Added pool {} (blocks of /{}, vxlan {})",
                pool.cidr,
                pool.block_prefix,
                pool.vxlan.as_str()
            );
        }
        PoolCommand::Set { cidr, vxlan } => {
            let pool = ipam.set_pool_vxlan(&cidr, vxlan).await?;
            println!("Pool {}: vxlan {}", pool.cidr, pool.vxlan.as_str());
        }
        PoolCommand::Remove { cidr } => {
            ipam.remove_pool(&cidr).await?;
            println!("Removed pool {cidr}");
        }
        PoolCommand::Show => {
            let pools = ipam.pools().await?;
            let blocks = store.blocks().await?;
            let mut rows = Vec::new();
            let mut out = Vec::new();
            for pool in &pools {
                let mine: Vec<_> = blocks
                    .iter()
                    .filter(|b| b.value.pool == pool.cidr)
                    .collect();
                let used: usize = mine.iter().map(|b| b.value.allocations.len()).sum();
                let size = block::size(&pool.cidr);
                rows.push(vec![
                    pool.cidr.to_string(),
                    format!("/{}", pool.block_prefix),
                    mine.len().to_string(),
                    format!("{used}/{size}"),
                    pool.vxlan.as_str().to_string(),
                ]);
                out.push(json!({
                    "cidr": pool.cidr, "block_prefix": pool.block_prefix,
                    "blocks": mine.len(), "allocated": used, "size": json_count(size),
                    "created": pool.created, "vxlan": pool.vxlan.as_str(),
                }));
            }
            print(
                format,
                &["CIDR", "BLOCK SIZE", "BLOCKS CLAIMED", "ALLOCATED", "VXLAN"],
                rows,
                &out,
            );
        }
    }
    Ok(())
}

/// A count as a JSON number where one fits (an IPv6 pool's size does not).
fn json_count(n: u128) -> serde_json::Value {
    u64::try_from(n).map_or_else(|_| n.to_string().into(), Into::into)
}
