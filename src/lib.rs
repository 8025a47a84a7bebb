//! tabby: Calico-style routed networking for plain Docker hosts.

pub mod ipam;
pub mod model;
pub mod store;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
