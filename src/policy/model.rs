//! The firewall as typed values: what `render` computes from the datastore
//! and each backend lays out in its own tool (iptables chains and ipsets,
//! or one nftables table). No backend syntax lives here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::model::{PortRange, Protocol};

/// The packet-mark bit an allow sets (filter only; Docker uses none
/// there). With nftables it also tells iptables' `FORWARD` to accept.
pub const ACCEPT_BIT: u32 = 0x100000;

/// Tag sets by name: the addresses of every endpoint carrying the tag.
/// A set holds one family, told by its name (`names::is_ipv6_set`).
pub type Sets = BTreeMap<String, BTreeSet<IpAddr>>;

/// An interface, by exact name or by a name prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Iface {
    Name(String),
    Prefix(String),
}

/// Connection-tracking conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct {
    Invalid,
    /// Established or related.
    Established,
    /// Made by a DNAT (an exposed port).
    Dnat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    In(Iface),
    Out(Iface),
    /// Source address: matches packets of the CIDR's family only.
    Src(IpNet),
    NotSrc(IpNet),
    Dst(IpNet),
    /// Any IPv6 packet.
    Ipv6,
    /// ICMPv6 (what `Protocol(Icmp)` is for IPv4).
    Icmp6,
    /// ICMPv6 of one type (it implies `Icmp6`).
    Icmp6Type(u8),
    /// Source address in a tag set (of the set's family).
    SrcSet(String),
    DstSet(String),
    Protocol(Protocol),
    SrcPorts(Vec<PortRange>),
    DstPorts(Vec<PortRange>),
    /// An endpoint's policy allowed the packet (the accept mark is set).
    Accepted,
    Ct(Ct),
    NotCt(Ct),
    /// Addressed to one of this host's own addresses.
    DstLocal,
}

/// Which side of an endpoint a packet is on: leaving it (`From`, matched
/// by input interface) or going to it (`To`, by output interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    From,
    To,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    /// Sets the accept mark and carries on.
    MarkAccepted,
    /// Clears the accept mark and carries on.
    ClearAccepted,
    /// Into the endpoint's own chain, chosen by interface (`Dispatch`).
    Dispatch(Direction),
    Dnat(SocketAddr),
    /// DNAT to the entry of the named map (`Table::maps`, keys of this
    /// kind) that the packet's key finds; one that finds none carries on.
    DnatMap(String, DnatKind),
    Masquerade,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub verdict: Verdict,
}

impl Rule {
    pub fn new(matches: Vec<Match>, verdict: Verdict) -> Rule {
        Rule { matches, verdict }
    }

    /// A rule that matches everything.
    pub fn always(verdict: Verdict) -> Rule {
        Rule::new(Vec::new(), verdict)
    }
}

/// tabby's chains of one table (filter or nat), and where the built-in
/// hooks (`FORWARD`, `INPUT`, `PREROUTING`, `OUTPUT`, `POSTROUTING`) enter
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub chains: Vec<(String, Vec<Rule>)>,
    /// (built-in hook, tabby chain): the chain sees the hook's packets
    /// before anything else does.
    pub hooks: Vec<(String, String)>,
    /// DNAT maps by name, which `Verdict::DnatMap` rules consult.
    pub maps: Vec<(String, DnatMap)>,
}

/// Which of a connection's fields, besides its protocol and destination
/// port, find its DNAT entry: the interface it arrived on, the host
/// address it was sent to, both or neither; and its family (`v6`), which
/// the host address and the endpoint address it goes to are of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnatKind {
    pub iface: bool,
    pub addr: bool,
    pub v6: bool,
}

impl DnatKind {
    pub const IFACE_ADDR: DnatKind = DnatKind::v4(true, true);
    pub const ADDR: DnatKind = DnatKind::v4(false, true);
    pub const IFACE: DnatKind = DnatKind::v4(true, false);
    pub const ANY: DnatKind = DnatKind::v4(false, false);

    const fn v4(iface: bool, addr: bool) -> DnatKind {
        DnatKind {
            iface,
            addr,
            v6: false,
        }
    }

    /// The same fields, for IPv6 connections.
    pub const fn ipv6(self) -> DnatKind {
        DnatKind { v6: true, ..self }
    }

    /// The fields of this kind's keys, in the order every backend lays
    /// them out.
    pub fn fields(self) -> impl Iterator<Item = DnatField> {
        let iface = self.iface.then_some(DnatField::Iface);
        let addr = self.addr.then_some(DnatField::Addr);
        iface
            .into_iter()
            .chain(addr)
            .chain([DnatField::Protocol, DnatField::Port])
    }
}

/// A field of a DNAT key: the input interface, the destination address,
/// the protocol, the destination port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnatField {
    Iface,
    Addr,
    Protocol,
    Port,
}

/// One exposed port, as its DNAT map keys it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnatKey {
    pub iface: Option<String>,
    /// The host address, of the family of the endpoint address the
    /// entry goes to.
    pub addr: Option<IpAddr>,
    pub protocol: Protocol,
    pub port: u16,
}

/// Exposed ports of one kind -> the endpoint address and port each goes
/// to, all of the kind's family. A change to one exposure is one entry:
/// nftables keeps it as a map element, iptables as a rule of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnatMap {
    pub kind: DnatKind,
    pub entries: BTreeMap<DnatKey, SocketAddr>,
}

impl Table {
    pub fn chain(&mut self, name: &str, rules: Vec<Rule>) {
        self.chains.push((name.to_string(), rules));
    }

    pub fn hook(&mut self, builtin: &str, chain: &str) {
        self.hooks.push((builtin.to_string(), chain.to_string()));
    }

    pub fn map(&self, name: &str) -> Option<&DnatMap> {
        self.maps.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    pub fn rules(&self, name: &str) -> Option<&[Rule]> {
        self.chains
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.as_slice())
    }

    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|(_, r)| r.len()).sum()
    }
}

/// Which endpoint chain a packet enters, by interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispatch {
    /// Host-side veth -> the chain of its endpoint's outgoing traffic.
    pub from: BTreeMap<String, String>,
    /// Host-side veth -> the chain of its endpoint's incoming traffic.
    pub to: BTreeMap<String, String>,
    /// Veths whose every packet is dropped (records that fail checks).
    pub quarantined: BTreeSet<String>,
}

impl Dispatch {
    pub fn entries(&self, direction: Direction) -> &BTreeMap<String, String> {
        match direction {
            Direction::From => &self.from,
            Direction::To => &self.to,
        }
    }
}

/// Everything tabby's firewall holds on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub filter: Table,
    pub nat: Table,
    pub dispatch: Dispatch,
}

/// How much a policy puts in the kernel, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Programmed {
    pub chains: usize,
    pub rules: usize,
    pub set_members: usize,
    pub dnat_entries: usize,
}

impl Programmed {
    pub fn of(ruleset: &Ruleset, sets: &Sets) -> Programmed {
        let tables = [&ruleset.filter, &ruleset.nat];
        Programmed {
            chains: tables.iter().map(|t| t.chains.len()).sum(),
            rules: tables.iter().map(|t| t.rule_count()).sum(),
            set_members: sets.values().map(BTreeSet::len).sum(),
            dnat_entries: tables
                .iter()
                .flat_map(|t| &t.maps)
                .map(|(_, m)| m.entries.len())
                .sum(),
        }
    }
}
