//! What a host's firewall must be, computed from the datastore: tabby's
//! filter chains (per endpoint, per profile) and its tag ipsets. Pure.
//!
//! Packets between a tabby endpoint and anything else cross FORWARD:
//!
//! ```text
//! TABBY-FORWARD  established: accept; from a veth: TABBY-FROM-WL; to a veth: TABBY-TO-WL; accept
//! TABBY-FROM-WL  by input veth -> TABBY-FW-<ep>: anti-spoofing, then each profile's outbound chain
//! TABBY-TO-WL    by output veth -> TABBY-TW-<ep>: each profile's inbound chain
//! TABBY-PI-<p>   inbound rules; TABBY-PO-<p> outbound rules
//! ```
//!
//! An allow sets a mark bit and returns; an endpoint chain returns once the
//! bit is set and drops at its end. Tags are ipsets of endpoint addresses
//! (of every host), so a membership change touches a set, never a rule.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use super::Ruleset;
use crate::dataplane::VETH_PREFIX;
use crate::model::{Action, Endpoint, Exposure, Profile, Protocol, Rule, RuleMatch};

pub const FORWARD: &str = "TABBY-FORWARD";
pub const INPUT: &str = "TABBY-INPUT";
const FROM_WL: &str = "TABBY-FROM-WL";
const TO_WL: &str = "TABBY-TO-WL";
/// The bit an allow sets (filter table only; Docker uses none there).
const ACCEPT_MARK: &str = "0x100000/0x100000";
pub const SET_PREFIX: &str = "tabby-t-";
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
/// replaced by a stable hash.
fn short_name(prefix: &str, name: &str, max: usize) -> String {
    if prefix.len() + name.len() <= max {
        return format!("{prefix}{name}");
    }
    let hash = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    format!("{prefix}~{hash:016x}")
}

pub fn tag_set(tag: &str) -> String {
    short_name(SET_PREFIX, tag, 31)
}

pub fn profile_chain(direction: &str, profile: &str) -> String {
    short_name(&format!("TABBY-P{direction}-"), profile, 28)
}

fn endpoint_chain(direction: &str, endpoint_id: &str) -> String {
    format!(
        "TABBY-{direction}W-{}",
        crate::validate::prefix(endpoint_id, 12)
    )
}

pub struct PolicyInput<'a> {
    /// Endpoints of this host (they get chains).
    pub local: &'a [Endpoint],
    /// Endpoints of every host (they fill the tag sets).
    pub all: &'a [Endpoint],
    pub profiles: &'a [Profile],
    /// Exposures of every host; those matching a local endpoint apply.
    pub exposures: &'a [Exposure],
    /// Veths of this host's endpoints whose records fail their checks:
    /// kept, but every packet of theirs is dropped.
    pub quarantined: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyState {
    pub ruleset: Ruleset,
    pub ipsets: BTreeMap<String, BTreeSet<Ipv4Addr>>,
}

fn ports_arg(flag: &str, ports: &[crate::model::PortRange]) -> String {
    format!("-m multiport {flag} {}", super::rules::port_list(ports))
}

fn match_args(m: &RuleMatch, side: &str, args: &mut Vec<String>) {
    let (addr, set_dir, ports) = if side == "src" {
        ("-s", "src", "--sports")
    } else {
        ("-d", "dst", "--dports")
    };
    if let Some(cidr) = m.cidr {
        args.push(format!("{addr} {cidr}"));
    }
    if let Some(tag) = &m.tag {
        args.push(format!("-m set --match-set {} {set_dir}", tag_set(tag)));
    }
    if !m.ports.is_empty() {
        args.push(ports_arg(ports, &m.ports));
    }
}

/// iptables lines for one rule: an allow marks and returns, a deny drops.
pub fn rule_lines(rule: &Rule) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(p) = rule.protocol {
        args.push(
            match p {
                Protocol::Tcp => "-p tcp",
                Protocol::Udp => "-p udp",
                Protocol::Icmp => "-p icmp",
            }
            .to_string(),
        );
    }
    match_args(&rule.from, "src", &mut args);
    match_args(&rule.to, "dst", &mut args);
    let spec = args.join(" ");
    let sep = if spec.is_empty() { "" } else { " " };
    match rule.action {
        Action::Deny => vec![format!("{spec}{sep}-j DROP")],
        Action::Allow => vec![
            format!("{spec}{sep}-j MARK --set-xmark {ACCEPT_MARK}"),
            format!("-m mark --mark {ACCEPT_MARK} -j RETURN"),
        ],
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
    }
}

pub const PREROUTING: &str = "TABBY-PREROUTING";
pub const OUTPUT: &str = "TABBY-OUTPUT";
pub const POSTROUTING: &str = "TABBY-POSTROUTING";

/// The DNAT lines of one exposure: (PREROUTING, OUTPUT). A loopback host
/// address is the host's own: nothing from outside may use it, so it gets
/// no PREROUTING line (the veths' `route_localnet` would otherwise let a
/// neighbour send to 127.0.0.1, CVE-2020-8558).
fn dnat_lines(ep: &Endpoint, x: &Exposure) -> (Option<String>, String) {
    let dst = match x.host_ip {
        Some(ip) => format!("-d {ip}/32 "),
        None => String::new(),
    };
    let dnat = format!(
        "{dst}-m addrtype --dst-type LOCAL -p {} --dport {} -j DNAT --to-destination {}:{}",
        proto_name(x.protocol),
        x.host_port,
        ep.ip,
        x.port
    );
    let pre = match (&x.interface, x.host_ip) {
        (_, Some(ip)) if ip.is_loopback() => None,
        (Some(iface), _) => Some(format!("-i {iface} {dnat}")),
        (None, _) => Some(dnat.clone()),
    };
    (pre, dnat)
}

/// DNAT of exposed ports, from outside (PREROUTING) and from the host itself
/// (OUTPUT), to local endpoints; returns the (endpoint, exposure) pairs.
/// A connection to a loopback address leaves with a loopback source the
/// container cannot answer: it is masqueraded as it enters the veth.
fn render_nat<'a>(
    input: &'a PolicyInput,
    nat: &mut super::Table,
) -> Vec<(&'a Endpoint, &'a Exposure)> {
    let mut active = Vec::new();
    for exposure in input.exposures {
        if let Some(ep) = input.local.iter().find(|ep| exposure.matches(ep)) {
            active.push((ep, exposure));
        }
    }
    let (mut pre, mut out) = (Vec::new(), Vec::new());
    for (ep, x) in &active {
        let (p, o) = dnat_lines(ep, x);
        pre.extend(p);
        out.push(o);
    }
    nat.chain(PREROUTING, pre);
    nat.chain(OUTPUT, out);
    nat.chain(
        POSTROUTING,
        vec![format!(
            "-s 127.0.0.0/8 -o {VETH_PREFIX}+ -m conntrack --ctstate DNAT -j MASQUERADE"
        )],
    );
    nat.hook("PREROUTING", PREROUTING);
    nat.hook("OUTPUT", OUTPUT);
    nat.hook("POSTROUTING", POSTROUTING);
    active
}

/// Veth dispatch as a two-level tree keyed by the first character of the
/// endpoint ID: a new endpoint rewrites one short chain, not one line per
/// endpoint of the host. An interface that is no endpoint of this host
/// (a user's `tabby0` bridge: iptables can only match a name prefix)
/// returns unmarked, so tabby passes no verdict on it; quarantined veths
/// are dropped first.
fn dispatch_tree(
    ruleset: &mut super::Table,
    (root, flag): (&str, &str),
    lines: Vec<(char, String)>,
    quarantined: &[String],
) {
    let mut buckets: BTreeMap<char, Vec<String>> = BTreeMap::new();
    for (key, line) in lines {
        buckets.entry(key).or_default().push(line);
    }
    let mut top: Vec<String> = quarantined
        .iter()
        .map(|veth| format!("{flag} {veth} -j DROP"))
        .collect();
    for (key, lines) in buckets {
        let chain = format!("{root}-{key}");
        top.push(format!("{flag} {VETH_PREFIX}{key}+ -g {chain}"));
        ruleset.chain(&chain, lines);
    }
    ruleset.chain(root, top);
}

fn mark_mask() -> &'static str {
    ACCEPT_MARK
        .split_once('/')
        .map_or(ACCEPT_MARK, |(_, mask)| mask)
}

pub fn render(input: &PolicyInput) -> PolicyState {
    let mut rules = Ruleset::default();
    let exposed = render_nat(input, &mut rules.nat);
    let ruleset = &mut rules.filter;
    let veths = format!("{VETH_PREFIX}+");
    // An endpoint's chains return only with the accept mark set (or drop):
    // accepted is what an endpoint's policy allowed; traffic of foreign
    // `tabby…` interfaces comes back unmarked and is left to the rest of
    // FORWARD, as if tabby were not there.
    let clear = format!("-j MARK --set-xmark 0x0/{}", mark_mask());
    ruleset.chain(
        FORWARD,
        vec![
            "-m conntrack --ctstate INVALID -j DROP".into(),
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".into(),
            format!("-i {veths} {clear}"),
            format!("-o {veths} {clear}"),
            format!("-i {veths} -j {FROM_WL}"),
            format!("-o {veths} -j {TO_WL}"),
            format!("-i {veths} -m mark --mark {ACCEPT_MARK} -j ACCEPT"),
            format!("-o {veths} -m mark --mark {ACCEPT_MARK} -j ACCEPT"),
        ],
    );
    // Traffic from a container to its own host obeys its outbound rules
    // and anti-spoofing too; the host reaching its containers is not
    // policed (as in Calico).
    // Veths accept loopback addresses (`route_localnet`, for exposures on
    // 127.0.0.1): only the replies of those connections may use them.
    ruleset.chain(
        INPUT,
        vec![
            format!(
                "-i {veths} -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP"
            ),
            format!("-i {veths} -j {FROM_WL}"),
        ],
    );
    ruleset.hook("FORWARD", FORWARD);
    ruleset.hook("INPUT", INPUT);

    let known: BTreeSet<&str> = input.profiles.iter().map(|p| p.name.as_str()).collect();
    let (mut from_dispatch, mut to_dispatch) = (Vec::new(), Vec::new());
    for ep in input.local {
        let (fw, tw) = (endpoint_chain("F", &ep.id), endpoint_chain("T", &ep.id));
        let key = ep.veth.chars().nth(VETH_PREFIX.len()).unwrap_or('_');
        from_dispatch.push((key, format!("-i {} -g {fw}", ep.veth)));
        to_dispatch.push((key, format!("-o {} -g {tw}", ep.veth)));
        let clear = format!("-j MARK --set-xmark 0x0/{}", mark_mask());
        let mut from_rules = vec![clear.clone(), format!("! -s {}/32 -j DROP", ep.ip)];
        let mut to_rules = vec![clear];
        // An exposed port takes only the connections its DNAT made.
        for (_, x) in exposed.iter().filter(|(e, _)| e.id == ep.id) {
            to_rules.push(format!(
                "-p {} --dport {} -m conntrack --ctstate DNAT -j MARK --set-xmark {ACCEPT_MARK}",
                proto_name(x.protocol),
                x.port
            ));
            to_rules.push(format!("-m mark --mark {ACCEPT_MARK} -j RETURN"));
        }
        for profile in ep.profiles.iter().filter(|p| known.contains(p.as_str())) {
            from_rules.push(format!("-j {}", profile_chain("O", profile)));
            from_rules.push(format!("-m mark --mark {ACCEPT_MARK} -j RETURN"));
            to_rules.push(format!("-j {}", profile_chain("I", profile)));
            to_rules.push(format!("-m mark --mark {ACCEPT_MARK} -j RETURN"));
        }
        from_rules.push("-j DROP".into());
        to_rules.push("-j DROP".into());
        ruleset.chain(&fw, from_rules);
        ruleset.chain(&tw, to_rules);
    }
    dispatch_tree(ruleset, (FROM_WL, "-i"), from_dispatch, input.quarantined);
    dispatch_tree(ruleset, (TO_WL, "-o"), to_dispatch, input.quarantined);

    let mut referenced: BTreeSet<String> = BTreeSet::new();
    for profile in input.profiles {
        let lines = |rules: &[Rule]| rules.iter().flat_map(rule_lines).collect::<Vec<_>>();
        ruleset.chain(&profile_chain("I", &profile.name), lines(&profile.inbound));
        ruleset.chain(&profile_chain("O", &profile.name), lines(&profile.outbound));
        for rule in profile.inbound.iter().chain(&profile.outbound) {
            referenced.extend(rule.from.tag.iter().chain(&rule.to.tag).cloned());
        }
        referenced.extend(profile.tags.iter().cloned());
    }

    let tags_of: HashMap<&str, &BTreeSet<String>> = input
        .profiles
        .iter()
        .map(|p| (p.name.as_str(), &p.tags))
        .collect();
    let mut ipsets: BTreeMap<String, BTreeSet<Ipv4Addr>> = referenced
        .iter()
        .map(|t| (tag_set(t), BTreeSet::new()))
        .collect();
    for ep in input.all {
        for profile in &ep.profiles {
            for tag in tags_of
                .get(profile.as_str())
                .into_iter()
                .flat_map(|t| t.iter())
            {
                if let Some(set) = ipsets.get_mut(&tag_set(tag)) {
                    set.insert(ep.ip);
                }
            }
        }
    }
    PolicyState {
        ruleset: rules,
        ipsets,
    }
}

#[cfg(test)]
mod tests;
