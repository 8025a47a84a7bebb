//! What a pool must be, in either family, whatever else exists.

use std::net::IpAddr;

use ipnet::IpNet;

use super::ValidationError;

/// Most blocks an IPv4 pool may be cut into: its block list stays small
/// enough to hold in memory. IPv6 pools are never listed block by block
/// (free blocks are computed), so they have no such bound.
pub const MAX_BLOCKS: u64 = 1 << 16;
/// Shortest IPv4 pool prefix: anything wider swallows whole classes.
pub const MIN_POOL_PREFIX: u8 = 8;
/// Shortest IPv6 pool prefix: a site's allocation (RFC 6177's /48) and
/// then some; wider swallows other sites.
pub const MIN_POOL_PREFIX_V6: u8 = 32;
/// Most addresses in one block, in either family: a block is one etcd
/// record, and its free slot is found by walking it.
const MAX_BLOCK_BITS: u8 = 16;

/// Address ranges no pool may touch: every pool becomes a blackhole route
/// on every host, so one of these would cut hosts off.
const RESERVED: &[(&str, &str)] = &[
    ("0.0.0.0/8", "it is \"this network\" (0.0.0.0/8)"),
    ("127.0.0.0/8", "it overlaps loopback (127.0.0.0/8)"),
    ("169.254.0.0/16", "it overlaps link-local (169.254.0.0/16)"),
    ("224.0.0.0/4", "it overlaps multicast (224.0.0.0/4)"),
    (
        "240.0.0.0/4",
        "it overlaps the reserved range 240.0.0.0/4 (with the broadcast address)",
    ),
    (
        "::/8",
        "it overlaps the unspecified, loopback and IPv4-mapped addresses (::/8)",
    ),
    ("fe80::/10", "it overlaps link-local (fe80::/10)"),
    ("ff00::/8", "it overlaps multicast (ff00::/8)"),
];

/// A network address, not too wide, clear of reserved ranges, with
/// blocks of a size the family allows.
pub fn pool(cidr: IpNet, block_prefix: u8) -> Result<(), ValidationError> {
    let bad = |reason: String| ValidationError::Pool { cidr, reason };
    if cidr.trunc() != cidr {
        return Err(bad(format!(
            "it is not a network address: did you mean {}?",
            cidr.trunc()
        )));
    }
    let (min_prefix, max) = match cidr {
        IpNet::V4(_) => (MIN_POOL_PREFIX, 32),
        IpNet::V6(_) => (MIN_POOL_PREFIX_V6, 128),
    };
    if cidr.prefix_len() < min_prefix {
        return Err(bad(format!(
            "a /{} is too large: pools are /{min_prefix} or smaller",
            cidr.prefix_len()
        )));
    }
    for (range, reason) in RESERVED {
        let range: IpNet = range.parse().expect("constant CIDR");
        if range.contains(&cidr.network()) || cidr.contains(&range.network()) {
            return Err(bad(reason.to_string()));
        }
    }
    let smallest_block = max - MAX_BLOCK_BITS;
    if !(smallest_block..=max).contains(&block_prefix) {
        return Err(bad(format!(
            "block size /{block_prefix} is invalid: use a prefix length from {smallest_block} to {max}"
        )));
    }
    if cidr.addr().is_ipv4() {
        let blocks = 1u64 << block_prefix.saturating_sub(cidr.prefix_len());
        if blocks > MAX_BLOCKS {
            let smallest = cidr.prefix_len() + 16;
            return Err(bad(format!(
                "it would have {blocks} blocks of /{block_prefix}; at most {MAX_BLOCKS}: use --block-size {smallest} or a smaller pool"
            )));
        }
    }
    Ok(())
}

/// A pool must not hold an address hosts use to reach each other or
/// etcd: its blackhole route would take that address away.
pub fn pool_clear_of(
    cidr: IpNet,
    what: &str,
    addresses: impl IntoIterator<Item = IpAddr>,
) -> Result<(), ValidationError> {
    match addresses.into_iter().find(|a| cidr.contains(a)) {
        Some(a) => Err(ValidationError::Pool {
            cidr,
            reason: format!("it contains {a}, the address of {what}"),
        }),
        None => Ok(()),
    }
}
