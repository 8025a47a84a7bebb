//! The names tabby gives its chains and sets, shared by every backend:
//! a chain or set is tabby's only if its name is one of these exactly or
//! has one of these shapes.

use crate::hash::fnv1a;

pub const FORWARD: &str = "TABBY-FORWARD";
pub const INPUT: &str = "TABBY-INPUT";
pub const FROM_WL: &str = "TABBY-FROM-WL";
pub const TO_WL: &str = "TABBY-TO-WL";
pub const PREROUTING: &str = "TABBY-PREROUTING";
pub const OUTPUT: &str = "TABBY-OUTPUT";
pub const POSTROUTING: &str = "TABBY-POSTROUTING";
pub const SET_PREFIX: &str = "tabby-t-";
pub const SET6_PREFIX: &str = "tabby-6-";
pub const CHAIN_PREFIX: &str = "TABBY-";

/// Whether a chain found in the kernel is one tabby renders, by the exact
/// names and name shapes above: a user's `TABBY-MINE` is not tabby's and
/// is never flushed or deleted.
pub fn is_own_chain(name: &str) -> bool {
    const FIXED: [&str; 7] = [
        FORWARD,
        INPUT,
        FROM_WL,
        TO_WL,
        PREROUTING,
        OUTPUT,
        POSTROUTING,
    ];
    const SHAPES: [&str; 6] = [
        "TABBY-FROM-WL-",
        "TABBY-TO-WL-",
        "TABBY-FW-",
        "TABBY-TW-",
        "TABBY-PI-",
        "TABBY-PO-",
    ];
    FIXED.contains(&name) || SHAPES.iter().any(|p| name.starts_with(p))
}

/// Ipset and chain names have small limits (31 and 28): long names are
/// replaced by a stable hash. The mark before it is `_`: no tag or profile
/// starts with one, and unlike the `~` of older releases nft's own syntax
/// takes it, so `nft list ruleset` output loads back with `nft -f`. Sets
/// of an older release are still found by the set prefix and removed.
fn short_name(prefix: &str, name: &str, max: usize) -> String {
    if prefix.len() + name.len() <= max {
        return format!("{prefix}{name}");
    }
    format!("{prefix}_{:016x}", fnv1a(name.as_bytes()))
}

pub fn tag_set(tag: &str) -> String {
    short_name(SET_PREFIX, tag, 31)
}

/// The IPv6 addresses of a tag's endpoints: a set of its own, as a set
/// holds one family.
pub fn tag_set6(tag: &str) -> String {
    short_name(SET6_PREFIX, tag, 31)
}

/// Whether a set of tabby's holds IPv6 addresses.
pub fn is_ipv6_set(name: &str) -> bool {
    name.starts_with(SET6_PREFIX)
}

/// The nodes VXLAN is taken from. No tag starts with `_`, and hashed
/// names are `_` and 16 hex digits, so this names no tag's set.
pub fn vxlan_peers_set() -> String {
    format!("{SET_PREFIX}_vxlan")
}

pub fn profile_chain(direction: &str, profile: &str) -> String {
    short_name(&format!("TABBY-P{direction}-"), profile, 28)
}

pub fn endpoint_chain(direction: &str, endpoint_id: &str) -> String {
    format!(
        "TABBY-{direction}W-{}",
        crate::validate::prefix(endpoint_id, 12)
    )
}

/// A DNAT map's name: its hook (`pre`, `out`), the fields its keys hold
/// and `6` for IPv6.
pub fn dnat_map(hook: &str, kind: crate::policy::model::DnatKind) -> String {
    let key = match (kind.iface, kind.addr) {
        (true, true) => "ifaddr",
        (false, true) => "addr",
        (true, false) => "if",
        (false, false) => "any",
    };
    let family = if kind.v6 { "6" } else { "" };
    format!("tabby-{hook}-{key}{family}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_tag_hashes_to_the_same_set_name_every_release() {
        // A set's name must not change between releases without need: a
        // renamed set is made anew and swapped into every rule using it.
        let set = super::tag_set("a-very-long-tag-name-over-limit");
        assert_eq!(set, "tabby-t-_9c5a8ad01462e5b2");
    }
}
