//! The plugin's business logic: what each Docker network and IPAM call
//! means for the datastore, IPAM and this host's kernel. The `api` module
//! only translates wire types to these calls.

mod bgp;
pub mod check;
mod drift;
mod dual_stack;
pub mod interfaces;
mod ipam;
mod names;
mod network;
mod network_names;
mod resync;
pub mod status;
#[cfg(test)]
mod tests;
mod tunnel;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net};

use crate::dataplane::{self, Dataplane};
use crate::ipam::Ipam;
use crate::policy::{self, Firewall};
use crate::store::{self, Store};

pub use check::CheckReport;
pub use dual_stack::Ipv6Data;
pub use ipam::PoolGrant;
pub use network::{JoinInfo, PROFILE_OPTION};
pub use resync::ResyncReport;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Ipam(#[from] crate::ipam::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Dataplane(#[from] dataplane::Error),
    #[error("firewall: {0}")]
    Firewall(#[from] policy::Error),
    #[error("BGP: {0}")]
    Bgp(#[from] crate::routing::bird::Error),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Validation(#[from] crate::validate::ValidationError),
    #[error("{0} is not supported by tabby")]
    Unsupported(String),
    #[error("network {0} is not a tabby network on this host")]
    UnknownNetwork(String),
    #[error("endpoint {0} is not known on this host")]
    UnknownEndpoint(String),
    #[error("network {id} still has {count} endpoint(s) attached")]
    NetworkInUse { id: String, count: usize },
}

#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub host: String,
    /// Pool used by networks created without --subnet (else the first pool).
    pub default_pool: Option<Ipv4Net>,
    /// Block prefix of pools created on demand by RequestPool.
    pub block_prefix: u8,
}

pub struct Driver {
    store: Store,
    ipam: Ipam,
    dataplane: Dataplane,
    firewall: Arc<dyn Firewall>,
    config: DriverConfig,
    /// Where container names are learned from, if a daemon is reachable.
    docker: Option<Arc<dyn crate::docker::Engine>>,
    /// Serialises kernel changes of plugin calls and resyncs, so a resync
    /// never sees a half-made endpoint and removes it.
    kernel: Arc<tokio::sync::Mutex<()>>,
    /// One firewall pass at a time, in the order they were asked for;
    /// holds the profile failures last recorded in the store.
    policy: tokio::sync::Mutex<Option<policy::contain::Failures>>,
    /// The sync status last written, so an unchanged pass writes nothing.
    synced: tokio::sync::Mutex<Option<crate::model::NodeStatus>>,
    /// One resync at a time: each reads pools, nodes and blocks before it
    /// programs anything, and resyncs start from several tasks (watch,
    /// periodic, ipam check). Overlapping, the one that read first could
    /// program its older view last.
    resyncs: tokio::sync::Mutex<()>,
    /// One interface plan at a time (see `interfaces`).
    interfaces: tokio::sync::Mutex<()>,
    /// In BGP mode, what announces this host's routes and installs the
    /// others'.
    bgp: Option<bgp::BgpRouting>,
}

impl Driver {
    pub fn new(
        store: Store,
        dataplane: Dataplane,
        firewall: Arc<dyn Firewall>,
        config: DriverConfig,
        docker: Option<Arc<dyn crate::docker::Engine>>,
    ) -> Self {
        Driver {
            ipam: Ipam::new(store.clone(), &config.host),
            store,
            dataplane,
            firewall,
            config,
            docker,
            kernel: Arc::new(tokio::sync::Mutex::new(())),
            policy: tokio::sync::Mutex::new(None),
            synced: tokio::sync::Mutex::new(None),
            resyncs: tokio::sync::Mutex::new(()),
            interfaces: tokio::sync::Mutex::new(()),
            bgp: None,
        }
    }

    /// BGP mode: cross-host routes come from `speaker`, configured on every
    /// pass; `hold_time` in seconds.
    pub fn with_bgp(
        mut self,
        speaker: Arc<dyn crate::routing::bird::Speaker>,
        hold_time: u16,
    ) -> Self {
        self.bgp = Some(bgp::BgpRouting { speaker, hold_time });
        self
    }

    pub fn routing_mode(&self) -> crate::routing::Mode {
        match self.bgp {
            Some(_) => crate::routing::Mode::Bgp,
            None => crate::routing::Mode::Direct,
        }
    }

    pub fn host(&self) -> &str {
        &self.config.host
    }
}

/// Every ID a plugin call carries is checked on arrival: a bad one gets a
/// clear error before it reaches the store, a link name or iptables text.
fn docker_id(what: &'static str, value: &str) -> Result<(), Error> {
    Ok(crate::validate::docker_id(what, value)?)
}

/// Parses `A.B.C.D` or `A.B.C.D/N` as Docker sends addresses.
fn parse_address(what: &str, value: &str) -> Result<Ipv4Addr, Error> {
    let ip = value.split('/').next().unwrap_or_default();
    ip.parse()
        .map_err(|_| Error::Invalid(format!("{what} {value:?} is not an IPv4 address")))
}

/// Parses an address of either family, with or without a prefix length.
fn parse_ip(what: &str, value: &str) -> Result<IpAddr, Error> {
    let ip = value.split('/').next().unwrap_or_default();
    ip.parse()
        .map_err(|_| Error::Invalid(format!("{what} {value:?} is not an IP address")))
}

fn parse_net(what: &str, value: &str) -> Result<IpNet, Error> {
    value
        .parse()
        .map_err(|_| Error::Invalid(format!("{what} {value:?} is not a CIDR")))
}

fn parse_cidr(what: &str, value: &str) -> Result<Ipv4Net, Error> {
    value
        .parse()
        .map_err(|_| Error::Invalid(format!("{what} {value:?} is not an IPv4 CIDR")))
}
