//! tabby: Calico-style routed networking for plain Docker hosts.

pub mod agent;
pub mod api;
pub mod cli;
pub mod dataplane;
pub mod docker;
pub mod driver;
pub mod error_chain;
pub mod hash;
pub mod ipam;
pub mod metrics;
pub mod model;
pub mod mysql;
pub mod netdef;
pub mod policy;
pub mod routing;
pub mod secret_file;
pub mod store;
pub mod validate;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
