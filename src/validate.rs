//! The checks every input passes before tabby acts on it: at the plugin
//! and CLI boundaries, and again on each record read back from etcd before
//! it is rendered into routes or firewall rules. One place, so the rules a
//! CLI command enforces are exactly the rules a renderer relies on.

use ipnet::IpNet;

use crate::model::{PortRange, Protocol, Rule, RuleMatch};

mod pools;
pub use pools::{MAX_BLOCKS, MIN_POOL_PREFIX, pool, pool_clear_of};

/// Longest name tabby accepts (a DNS label; Docker allows more, but names
/// end up in ipset and chain names and in keys).
pub const NAME_MAX: usize = 63;
/// Length of a full Docker ID (network, endpoint, container).
pub const DOCKER_ID_LEN: usize = 64;
/// Slots of one iptables `multiport` match: a single port takes one, a
/// range two (xt_multiport's XT_MULTI_PORTS).
pub const MULTIPORT_SLOTS: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("invalid {kind} {value:?}: a Docker ID is {DOCKER_ID_LEN} lowercase hex digits")]
    DockerId { kind: &'static str, value: String },
    #[error(
        "invalid {kind} {value:?}: use at most {NAME_MAX} letters, digits, '_', '.' and '-', starting with a letter or digit"
    )]
    Name { kind: &'static str, value: String },
    #[error("invalid pool {cidr}: {reason}")]
    Pool { cidr: IpNet, reason: String },
    #[error("invalid rule: {0}")]
    Rule(String),
    #[error("invalid {kind}: {reason}")]
    Record { kind: &'static str, reason: String },
}

/// A full Docker ID: exactly 64 lowercase hex digits. Anything else (short,
/// non-ASCII, with a newline) would reach interface names and
/// iptables-restore text.
pub fn docker_id(kind: &'static str, value: &str) -> Result<(), ValidationError> {
    let ok = value.len() == DOCKER_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::DockerId {
            kind,
            value: value.to_string(),
        })
    }
}

fn name_chars(value: &str) -> bool {
    let mut chars = value.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A name (network, cluster): `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 63.
pub fn name(kind: &'static str, value: &str) -> Result<(), ValidationError> {
    if name_chars(value) && value.len() <= NAME_MAX {
        Ok(())
    } else {
        Err(ValidationError::Name {
            kind,
            value: value.to_string(),
        })
    }
}

/// A profile or tag name: a name, or a Docker network ID, because a
/// network created without `tabby.profile` gets a profile (and tag) named
/// after its 64-digit ID.
pub fn profile_name(kind: &'static str, value: &str) -> Result<(), ValidationError> {
    name(kind, value).or_else(|e| docker_id(kind, value).map_err(|_| e))
}

/// A host name: the name alphabet, up to a full DNS name's 253.
pub fn hostname(value: &str) -> Result<(), ValidationError> {
    if name_chars(value) && value.len() <= 253 {
        Ok(())
    } else {
        Err(ValidationError::Name {
            kind: "host name",
            value: value.to_string(),
        })
    }
}

/// A container name as Docker allows it (its length is not bounded by us:
/// it is never rendered, only compared).
pub fn container_name(value: &str) -> Result<(), ValidationError> {
    if name_chars(value.trim_start_matches('/')) && value.len() <= 255 {
        Ok(())
    } else {
        Err(ValidationError::Name {
            kind: "container name",
            value: value.to_string(),
        })
    }
}

/// Docker's SandboxKey: an absolute path of the container's network
/// namespace. Only compared, never rendered, but still bounded.
pub fn sandbox_key(value: &str) -> Result<(), ValidationError> {
    let ok = value.starts_with('/')
        && value.len() <= 255
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(record("sandbox key", format!("{value:?}")))
    }
}

/// A kernel interface name: 1 to 15 bytes, no '/', no whitespace.
pub fn interface(value: &str) -> Result<(), ValidationError> {
    let ok = !value.is_empty()
        && value.len() <= 15
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(record("interface name", format!("{value:?}")))
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary: slicing never panics, whatever the input.
pub fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn record(kind: &'static str, reason: impl Into<String>) -> ValidationError {
    ValidationError::Record {
        kind,
        reason: reason.into(),
    }
}

/// Slots a port list takes in one multiport match.
pub fn multiport_slots(ports: &[PortRange]) -> usize {
    ports
        .iter()
        .map(|p| if p.first == p.last { 1 } else { 2 })
        .sum()
}

fn rule_match(side: &str, m: &RuleMatch) -> Result<(), ValidationError> {
    let bad = |msg: String| ValidationError::Rule(msg);
    for p in &m.ports {
        if p.first == 0 || p.first > p.last {
            return Err(bad(format!(
                "bad port range {}:{} ({side}): ports run from 1 to 65535, low to high",
                p.first, p.last
            )));
        }
    }
    let slots = multiport_slots(&m.ports);
    if slots > MULTIPORT_SLOTS {
        return Err(bad(format!(
            "the {side} ports take {slots} slots; the kernel backend (iptables multiport) \
             allows {MULTIPORT_SLOTS}, a range taking two: split them over several rules"
        )));
    }
    if let Some(tag) = &m.tag {
        profile_name("tag", tag).map_err(|e| bad(e.to_string()))?;
    }
    if let Some(cidr) = m.cidr
        && cidr.trunc() != cidr
    {
        return Err(bad(format!(
            "{cidr} is not a network address: did you mean {}?",
            cidr.trunc()
        )));
    }
    Ok(())
}

/// Everything the kernel backend needs to express a rule, however the rule
/// was made (parsed, or read from JSON or etcd).
pub fn rule(rule: &Rule) -> Result<(), ValidationError> {
    let has_ports = !rule.from.ports.is_empty() || !rule.to.ports.is_empty();
    if has_ports && !matches!(rule.protocol, Some(Protocol::Tcp | Protocol::Udp)) {
        return Err(ValidationError::Rule("ports need tcp or udp".into()));
    }
    rule_match("from", &rule.from)?;
    rule_match("to", &rule.to)?;
    if let (Some(from), Some(to)) = (rule.from.cidr, rule.to.cidr)
        && from.addr().is_ipv6() != to.addr().is_ipv6()
    {
        return Err(ValidationError::Rule(format!(
            "from cidr {from} and to cidr {to} are of different families: no packet matches both"
        )));
    }
    Ok(())
}

/// Implemented by every record type: true when the record may be acted on.
pub trait Validate {
    fn validate(&self) -> Result<(), ValidationError>;
}

#[cfg(test)]
mod tests;
