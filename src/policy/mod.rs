//! Packet filtering: what may reach and leave tabby endpoints. The rules
//! are rendered into a ruleset and applied by a `Firewall` backend.

pub mod contain;
pub mod drift;
pub mod exposures;
pub mod firewall;
pub mod iptables;
pub mod profiles;
pub mod render;
pub mod rules;

pub use firewall::{Error, Firewall, NoopFirewall, Ruleset, Table};
pub use render::{PolicyInput, PolicyState, render};
