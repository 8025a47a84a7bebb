//! What a host's firewall must be, computed from the datastore: tabby's
//! filter chains (per endpoint, per profile), the NAT of exposed ports and
//! the tag sets, as typed values (`model`). Pure.
//!
//! Packets between a tabby endpoint and anything else cross FORWARD:
//!
//! ```text
//! TABBY-FORWARD  established: accept; from a veth: dispatch by input veth; to a veth: by output veth
//! TABBY-FW-<ep>  anti-spoofing, then each profile's outbound chain
//! TABBY-TW-<ep>  exposed ports, then each profile's inbound chain
//! TABBY-PI-<p>   inbound rules; TABBY-PO-<p> outbound rules
//! ```
//!
//! An allow sets a mark bit and returns; an endpoint chain returns once the
//! bit is set and drops at its end. Tags are sets of endpoint addresses
//! (of every host), so a membership change touches a set, never a rule.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::IpNet;

use super::model::{
    Ct, Direction, DnatKey, DnatKind, DnatMap, Iface, Match, Rule, Ruleset, Sets, Table, Verdict,
};
use super::names::{
    FORWARD, INPUT, OUTPUT, POSTROUTING, PREROUTING, dnat_map, endpoint_chain, profile_chain,
    vxlan_peers_set,
};
use crate::dataplane::VETH_PREFIX;
use crate::model::{self, Endpoint, Exposure, PortRange, Profile, Protocol};

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
    /// With a pool that encapsulates, every node's address: VXLAN from
    /// anywhere else is dropped. None: no pool encapsulates.
    pub vxlan_peers: Option<&'a [Ipv4Addr]>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyState {
    pub ruleset: Ruleset,
    pub sets: Sets,
}

fn loopback() -> IpNet {
    IpNet::new(Ipv4Addr::LOCALHOST.into(), 8)
        .expect("a prefix length")
        .trunc()
}

/// ICMPv6 router solicitation, neighbour solicitation and advertisement.
const NEIGHBOUR_DISCOVERY: [u8; 3] = [133, 135, 136];

fn veths() -> Iface {
    Iface::Prefix(VETH_PREFIX.to_string())
}

/// Where an exposure's connections are caught: (from outside, from the
/// host itself). A loopback host address is the host's own: nothing from
/// outside may use it, so it gets no PREROUTING entry (the veths'
/// `route_localnet` would otherwise let a neighbour send to 127.0.0.1,
/// CVE-2020-8558). The host's own connections arrive on no interface.
fn dnat_keys(x: &Exposure) -> (Option<DnatKey>, DnatKey) {
    let key = |iface: Option<&String>| DnatKey {
        iface: iface.cloned(),
        // `::` is every IPv6 address: the family is the map's.
        addr: x.host_ip.filter(|ip| !ip.is_unspecified()),
        protocol: x.protocol,
        port: x.host_port,
    };
    let outside = match x.host_ip {
        Some(ip) if ip.is_loopback() => None,
        _ => Some(key(x.interface.as_ref())),
    };
    (outside, key(None))
}

/// The map a key belongs in, going to an address of `to`'s family.
fn key_kind(key: &DnatKey, to: &SocketAddr) -> DnatKind {
    DnatKind {
        iface: key.iface.is_some(),
        addr: key.addr.is_some(),
        v6: to.is_ipv6(),
    }
}

/// The kinds of key each NAT hook consults, most specific first: an
/// exposure on one address wins over one on every address. The host's
/// own connections arrive on no interface.
const OUTSIDE_KINDS: [DnatKind; 4] = [
    DnatKind::IFACE_ADDR,
    DnatKind::ADDR,
    DnatKind::IFACE,
    DnatKind::ANY,
];
const LOCAL_KINDS: [DnatKind; 2] = [DnatKind::ADDR, DnatKind::ANY];

/// A NAT hook's chain: one DNAT rule per map, each map of one kind, the
/// IPv4 maps' and then their IPv6 twins'.
fn dnat_chain(
    nat: &mut Table,
    chain: &str,
    hook: &str,
    kinds: &[DnatKind],
    keys: &[(DnatKey, SocketAddr)],
) {
    let mut rules = Vec::new();
    let both = kinds.iter().copied().chain(kinds.iter().map(|k| k.ipv6()));
    for kind in both {
        let name = dnat_map(hook, kind);
        let mut entries = BTreeMap::new();
        // The first exposure of a key keeps it: the store refuses a
        // second, and a map holds one value per key.
        for (key, to) in keys.iter().filter(|(k, to)| key_kind(k, to) == kind) {
            entries.entry(key.clone()).or_insert(*to);
        }
        // The family is stated where no address in the key implies it:
        // such a key would match a packet of either.
        let family = (kind.v6 && !kind.addr).then_some(Match::Ipv6);
        rules.push(Rule::new(
            family.into_iter().chain([Match::DstLocal]).collect(),
            Verdict::DnatMap(name.clone(), kind),
        ));
        nat.maps.push((name, DnatMap { kind, entries }));
    }
    nat.chain(chain, rules);
}

/// DNAT of exposed ports, from outside (PREROUTING) and from the host itself
/// (OUTPUT), to local endpoints; returns the (endpoint, exposure) pairs.
/// A connection to a loopback address leaves with a loopback source the
/// container cannot answer: it is masqueraded as it enters the veth.
fn render_nat<'a>(input: &'a PolicyInput, nat: &mut Table) -> Vec<(&'a Endpoint, &'a Exposure)> {
    let mut active = Vec::new();
    for exposure in input.exposures {
        if let Some(ep) = input.local.iter().find(|ep| exposure.matches(ep)) {
            active.push((ep, exposure));
        }
    }
    let (mut pre, mut out) = (Vec::new(), Vec::new());
    for (ep, x) in &active {
        let (outside, local) = dnat_keys(x);
        for ip in super::exposures::addresses_reached(x, ep) {
            let to = SocketAddr::new(ip, x.port);
            pre.extend(outside.clone().map(|k| (k, to)));
            out.push((local.clone(), to));
        }
    }
    dnat_chain(nat, PREROUTING, "pre", &OUTSIDE_KINDS, &pre);
    dnat_chain(nat, OUTPUT, "out", &LOCAL_KINDS, &out);
    nat.chain(
        POSTROUTING,
        vec![Rule::new(
            vec![
                Match::Src(loopback()),
                Match::Out(veths()),
                Match::Ct(Ct::Dnat),
            ],
            Verdict::Masquerade,
        )],
    );
    nat.hook("PREROUTING", PREROUTING);
    nat.hook("OUTPUT", OUTPUT);
    nat.hook("POSTROUTING", POSTROUTING);
    active
}

/// The chains every host has, whatever its endpoints. An endpoint's chains
/// return only with the accept mark set (or drop): accepted is what an
/// endpoint's policy allowed; traffic of foreign `tabby…` interfaces (a
/// user's `tabby0` bridge: names can only be matched by prefix here) comes
/// back unmarked and is left to the rest of FORWARD, as if tabby were not
/// there.
fn fixed_chains(filter: &mut Table, vxlan: bool) {
    let from = || Match::In(veths());
    let to = || Match::Out(veths());
    filter.chain(
        FORWARD,
        vec![
            Rule::new(vec![Match::Ct(Ct::Invalid)], Verdict::Drop),
            Rule::new(vec![Match::Ct(Ct::Established)], Verdict::Accept),
            Rule::new(vec![from()], Verdict::ClearAccepted),
            Rule::new(vec![to()], Verdict::ClearAccepted),
            Rule::new(vec![from()], Verdict::Dispatch(Direction::From)),
            Rule::new(vec![to()], Verdict::Dispatch(Direction::To)),
            Rule::new(vec![from(), Match::Accepted], Verdict::Accept),
            Rule::new(vec![to(), Match::Accepted], Verdict::Accept),
        ],
    );
    // Traffic from a container to its own host obeys its outbound rules
    // and anti-spoofing too; the host reaching its containers is not
    // policed (as in Calico). Veths accept loopback addresses
    // (`route_localnet`, for exposures on 127.0.0.1): only the replies of
    // those connections may use them.
    let mut input = vxlan_guard(vxlan);
    input.extend([Rule::new(
        vec![
            from(),
            Match::Dst(loopback()),
            Match::NotCt(Ct::Established),
        ],
        Verdict::Drop,
    )]);
    // A container finds its IPv6 gateway (the host veth's link-local
    // address) by router and neighbour discovery, before any address is
    // its own: solicitations and advertisements reach the host.
    for kind in NEIGHBOUR_DISCOVERY {
        input.push(Rule::new(
            vec![from(), Match::Icmp6Type(kind)],
            Verdict::Accept,
        ));
    }
    input.push(Rule::new(vec![from()], Verdict::Dispatch(Direction::From)));
    filter.chain(INPUT, input);
    filter.hook("FORWARD", FORWARD);
    filter.hook("INPUT", INPUT);
}

/// With a tunnel, VXLAN is taken only from the cluster's nodes: anyone
/// else could otherwise inject packets into the container network.
fn vxlan_guard(vxlan: bool) -> Vec<Rule> {
    if !vxlan {
        return Vec::new();
    }
    let port = PortRange {
        first: crate::dataplane::VXLAN_PORT,
        last: crate::dataplane::VXLAN_PORT,
    };
    let vxlan = || vec![Match::Protocol(Protocol::Udp), Match::DstPorts(vec![port])];
    let mut from_peer = vxlan();
    from_peer.push(Match::SrcSet(vxlan_peers_set()));
    vec![
        Rule::new(from_peer, Verdict::Return),
        Rule::new(vxlan(), Verdict::Drop),
    ]
}

/// An endpoint's two chains: (from, to).
fn endpoint_rules(
    ep: &Endpoint,
    exposed: &[(&Endpoint, &Exposure)],
    known: &BTreeSet<&str>,
) -> (Vec<Rule>, Vec<Rule>) {
    // Anti-spoofing in both families: an endpoint with no IPv6 address
    // sends no IPv6 at all (but neighbour discovery, taken in INPUT).
    let ipv6 = match ep.ip6 {
        Some(ip6) => Match::NotSrc(IpAddr::V6(ip6).into()),
        None => Match::Ipv6,
    };
    let mut from = vec![
        Rule::always(Verdict::ClearAccepted),
        Rule::new(vec![Match::NotSrc(IpAddr::V4(ep.ip).into())], Verdict::Drop),
        Rule::new(vec![ipv6], Verdict::Drop),
    ];
    let mut to = vec![Rule::always(Verdict::ClearAccepted)];
    let returned = || Rule::new(vec![Match::Accepted], Verdict::Return);
    // An exposed port takes only the connections its DNAT made.
    for (_, x) in exposed.iter().filter(|(e, _)| e.id == ep.id) {
        let port = PortRange {
            first: x.port,
            last: x.port,
        };
        to.push(Rule::new(
            vec![
                Match::Protocol(x.protocol),
                Match::DstPorts(vec![port]),
                Match::Ct(Ct::Dnat),
            ],
            Verdict::MarkAccepted,
        ));
        to.push(returned());
    }
    for profile in ep.profiles.iter().filter(|p| known.contains(p.as_str())) {
        from.push(Rule::always(Verdict::Jump(profile_chain("O", profile))));
        from.push(returned());
        to.push(Rule::always(Verdict::Jump(profile_chain("I", profile))));
        to.push(returned());
    }
    from.push(Rule::always(Verdict::Drop));
    to.push(Rule::always(Verdict::Drop));
    (from, to)
}

pub fn render(input: &PolicyInput) -> PolicyState {
    let mut ruleset = Ruleset::default();
    let exposed = render_nat(input, &mut ruleset.nat);
    fixed_chains(&mut ruleset.filter, input.vxlan_peers.is_some());
    let known: BTreeSet<&str> = input.profiles.iter().map(|p| p.name.as_str()).collect();
    for ep in input.local {
        let (fw, tw) = (endpoint_chain("F", &ep.id), endpoint_chain("T", &ep.id));
        let (from, to) = endpoint_rules(ep, &exposed, &known);
        ruleset.filter.chain(&fw, from);
        ruleset.filter.chain(&tw, to);
        ruleset.dispatch.from.insert(ep.veth.clone(), fw);
        ruleset.dispatch.to.insert(ep.veth.clone(), tw);
    }
    ruleset.dispatch.quarantined = input.quarantined.iter().cloned().collect();
    for profile in input.profiles {
        let rules = |rules: &[model::Rule]| rules.iter().flat_map(profile_rule).collect();
        let filter = &mut ruleset.filter;
        filter.chain(&profile_chain("I", &profile.name), rules(&profile.inbound));
        filter.chain(&profile_chain("O", &profile.name), rules(&profile.outbound));
    }
    let mut sets = tag_sets(input);
    if let Some(peers) = input.vxlan_peers {
        sets.insert(
            vxlan_peers_set(),
            peers.iter().map(|p| (*p).into()).collect(),
        );
    }
    PolicyState { ruleset, sets }
}

mod profile_rules;
pub use profile_rules::profile_rule;
use profile_rules::tag_sets;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ipv6;
