//! Packet filtering: what may reach and leave tabby endpoints. The rules
//! are rendered into typed values (`model`) and laid out by a `Firewall`
//! backend: iptables with ipsets, or one nftables table.

pub mod backend;
pub mod contain;
pub mod exposures;
pub mod firewall;
pub mod iptables;
pub mod model;
pub mod names;
pub mod nftables;
pub mod profiles;
pub mod render;
pub mod rules;

pub use backend::Backend;
pub use firewall::{Error, Firewall, NoopFirewall};
pub use model::{Ruleset, Table};
pub use render::{PolicyInput, PolicyState, render};
