//! Network definitions: one network for every host (`tabby network …`).
//! Agents turn each definition into a local Docker network.

use std::collections::HashSet;

use chrono::Utc;
use ipnet::{Ipv4Net, Ipv6Net};

use crate::ipam::{self, Ipam, short_id};
use crate::model::{NetworkDef, NetworkStatus};
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Ipam(#[from] ipam::Error),
    #[error(transparent)]
    BadName(#[from] crate::validate::ValidationError),
    #[error("network {0} already exists")]
    Exists(String),
    #[error("no network {0}")]
    Missing(String),
    #[error("network {name} still has containers: {hosts}")]
    InUse { name: String, hosts: String },
}

/// Docker's own alphabet for names (so that every host accepts the name),
/// at most 63 characters.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), Error> {
    Ok(crate::validate::name(what, name)?)
}

/// Records a network for every host. The subnet's pool is created if no
/// pool overlaps it; nothing is written if anything is wrong.
pub async fn create(
    store: &Store,
    name: &str,
    subnets: (Ipv4Net, Option<Ipv6Net>),
    profile: Option<&str>,
    block_prefix: u8,
) -> Result<NetworkDef, Error> {
    let (subnet, subnet6) = subnets;
    validate_name("network name", name)?;
    if let Some(p) = profile {
        crate::validate::profile_name("profile name", p)?;
    }
    if store.netdef(name).await?.is_some() {
        return Err(Error::Exists(name.to_string()));
    }
    let ipam = Ipam::new(store.clone(), "cli");
    ipam.ensure_pool(subnet.into(), block_prefix).await?;
    if let Some(subnet6) = subnet6 {
        ipam.ensure_pool(subnet6.into(), ipam::DEFAULT_BLOCK_PREFIX_V6)
            .await?;
    }
    let def = NetworkDef {
        name: name.to_string(),
        subnet,
        subnet6,
        profile: profile.map(str::to_string),
        created: Utc::now(),
    };
    if !store.create_netdef(&def).await? {
        return Err(Error::Exists(name.to_string()));
    }
    Ok(def)
}

/// Removes a definition (and so, through the agents, its Docker networks),
/// refused while any host has containers on it.
pub async fn remove(store: &Store, name: &str) -> Result<(), Error> {
    if store.netdef(name).await?.is_none() {
        return Err(Error::Missing(name.to_string()));
    }
    let docker_ids: HashSet<String> = store
        .netstatuses(name)
        .await?
        .into_iter()
        .filter_map(|s| s.docker_id)
        .collect();
    let mut users: Vec<String> = Vec::new();
    for ep in store.endpoints().await? {
        if docker_ids.contains(&ep.network_id) {
            users.push(format!(
                "{} on {}",
                ep.container.as_deref().unwrap_or(short_id(&ep.id)),
                ep.host
            ));
        }
    }
    if !users.is_empty() {
        return Err(Error::InUse {
            name: name.to_string(),
            hosts: users.join(", "),
        });
    }
    store.delete_netdef(name).await?;
    Ok(())
}

/// Each definition with what every host reported for it.
pub async fn show(store: &Store) -> Result<Vec<(NetworkDef, Vec<NetworkStatus>)>, Error> {
    let mut out = Vec::new();
    for def in store.netdefs().await? {
        let statuses = store.netstatuses(&def.name).await?;
        out.push((def, statuses));
    }
    Ok(out)
}
