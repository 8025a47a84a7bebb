//! Packet filtering: what may reach and leave tabby endpoints. The rules
//! are rendered into a ruleset and applied by a `Firewall` backend.

pub mod firewall;
pub mod iptables;

pub use firewall::{Error, Firewall, NoopFirewall, Ruleset};

/// The chain tabby hooks from FORWARD. Everything tabby filters passes
/// through it; Docker's own chains are left alone.
pub const FORWARD_CHAIN: &str = "TABBY-FORWARD";

/// The ruleset of a host. For now: routed traffic to and from tabby
/// endpoints is accepted (dockerd sets FORWARD's policy to DROP, which
/// would otherwise drop it).
pub fn base_ruleset() -> Ruleset {
    let mut ruleset = Ruleset::default();
    let veths = format!("{}+", crate::dataplane::VETH_PREFIX);
    ruleset.chain(
        FORWARD_CHAIN,
        vec![
            format!("-i {veths} -j ACCEPT"),
            format!("-o {veths} -j ACCEPT"),
        ],
    );
    ruleset.hook("FORWARD", FORWARD_CHAIN);
    ruleset
}
