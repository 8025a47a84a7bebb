//! The typed ruleset in iptables' words: rule specs per chain, as
//! `iptables-restore` takes them, and the two-level interface dispatch
//! iptables needs where nftables has a map.

use std::collections::BTreeMap;

use crate::dataplane::VETH_PREFIX;
use crate::model::PortRange;
use crate::policy::model::{
    ACCEPT_BIT, Ct, Direction, Dispatch, DnatMap, Iface, Match, Rule, Ruleset, Table, Verdict,
};
use crate::policy::names::{FROM_WL, TO_WL};
use crate::policy::rules::port_list;

/// Chains owned by tabby in one iptables table, as rule specs, and the
/// jumps into them from built-in chains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextTable {
    /// Chain name and its rules, in order, as iptables rule specs.
    pub chains: Vec<(String, Vec<String>)>,
    /// (built-in chain, tabby chain) jumps, each placed first.
    pub hooks: Vec<(String, String)>,
}

/// tabby's filter and nat tables in iptables' words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextRuleset {
    pub filter: TextTable,
    pub nat: TextTable,
}

impl TextTable {
    pub fn chain(&mut self, name: &str, rules: Vec<String>) {
        self.chains.push((name.to_string(), rules));
    }

    pub fn hook(&mut self, builtin: &str, chain: &str) {
        self.hooks.push((builtin.to_string(), chain.to_string()));
    }

    /// The chains that differ from `before` (all of them without one).
    pub fn changed_since(&self, before: Option<&TextTable>) -> TextTable {
        let chains = self
            .chains
            .iter()
            .filter(|(name, rules)| {
                before.is_none_or(|b| !b.chains.iter().any(|(n, r)| n == name && r == rules))
            })
            .cloned()
            .collect();
        TextTable {
            chains,
            hooks: self.hooks.clone(),
        }
    }

    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|(_, r)| r.len()).sum()
    }

    /// This table's part of an `iptables-restore --noflush` batch:
    /// declaring a chain flushes it, so every chain is replaced whole in one
    /// atomic commit; chains in `stale` are emptied and deleted in it too.
    pub fn restore_text(&self, table: &str, stale: &[String]) -> String {
        let mut out = format!("*{table}\n");
        for name in self.chains.iter().map(|(n, _)| n).chain(stale) {
            out.push_str(&format!(":{name} - [0:0]\n"));
        }
        for (name, rules) in &self.chains {
            for rule in rules {
                out.push_str(&format!("-A {name} {rule}\n"));
            }
        }
        for name in stale {
            out.push_str(&format!("-X {name}\n"));
        }
        out.push_str("COMMIT\n");
        out
    }
}

fn mark() -> String {
    format!("{ACCEPT_BIT:#x}/{ACCEPT_BIT:#x}")
}

fn iface(flag: &str, iface: &Iface) -> String {
    match iface {
        Iface::Name(name) => format!("{flag} {name}"),
        Iface::Prefix(prefix) => format!("{flag} {prefix}+"),
    }
}

fn ct(state: Ct) -> &'static str {
    match state {
        Ct::Invalid => "INVALID",
        Ct::Established => "RELATED,ESTABLISHED",
        Ct::Dnat => "DNAT",
    }
}

fn match_text(m: &Match) -> String {
    match m {
        Match::In(i) => iface("-i", i),
        Match::Out(i) => iface("-o", i),
        Match::Src(net) => format!("-s {net}"),
        Match::NotSrc(net) => format!("! -s {net}"),
        Match::Dst(net) => format!("-d {net}"),
        // Only ip6tables gets these rules (`family`), and there every
        // packet is IPv6: the match is left out before this.
        Match::Ipv6 => "-6".into(),
        Match::Icmp6 => "-p ipv6-icmp".into(),
        Match::Icmp6Type(kind) => format!("-p ipv6-icmp -m icmp6 --icmpv6-type {kind}"),
        Match::SrcSet(set) => format!("-m set --match-set {set} src"),
        Match::DstSet(set) => format!("-m set --match-set {set} dst"),
        Match::Protocol(p) => format!("-p {}", p.name()),
        Match::SrcPorts(ports) => format!("-m multiport --sports {}", port_list(ports)),
        Match::DstPorts(ports) => format!("-m multiport --dports {}", port_list(ports)),
        Match::Accepted => format!("-m mark --mark {}", mark()),
        Match::Ct(state) => format!("-m conntrack --ctstate {}", ct(*state)),
        Match::NotCt(state) => format!("-m conntrack ! --ctstate {}", ct(*state)),
        Match::DstLocal => "-m addrtype --dst-type LOCAL".into(),
    }
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Accept => "-j ACCEPT".into(),
        Verdict::Drop => "-j DROP".into(),
        Verdict::Return => "-j RETURN".into(),
        Verdict::Jump(chain) => format!("-j {chain}"),
        Verdict::MarkAccepted => format!("-j MARK --set-xmark {}", mark()),
        Verdict::ClearAccepted => format!("-j MARK --set-xmark 0x0/{ACCEPT_BIT:#x}"),
        Verdict::Dispatch(Direction::From) => format!("-j {FROM_WL}"),
        Verdict::Dispatch(Direction::To) => format!("-j {TO_WL}"),
        Verdict::Dnat(to) => format!("-j DNAT --to-destination {to}"),
        Verdict::Masquerade => "-j MASQUERADE".into(),
        // Laid out as a rule per entry before this (`dnat_rules`).
        Verdict::DnatMap(map, _) => unreachable!("map {map} is laid out entry by entry"),
    }
}

/// One rule as an iptables rule spec.
pub fn rule_text(rule: &Rule) -> String {
    let mut words: Vec<String> = rule.matches.iter().map(match_text).collect();
    words.push(verdict_text(&rule.verdict));
    words.join(" ")
}

/// A DNAT map as iptables has it: a rule per entry, the entry's key as
/// matches around the map rule's own.
fn dnat_rules(rule: &Rule, map: Option<&DnatMap>) -> Vec<Rule> {
    let entries = map.map(|m| &m.entries).into_iter().flatten();
    entries
        .map(|(key, to)| {
            let mut matches: Vec<Match> = key
                .iface
                .iter()
                .map(|i| Match::In(Iface::Name(i.clone())))
                .collect();
            matches.extend(key.addr.map(|ip| Match::Dst(ip.into())));
            matches.extend(rule.matches.iter().cloned());
            matches.push(Match::Protocol(key.protocol));
            matches.push(Match::DstPorts(vec![PortRange {
                first: key.port,
                last: key.port,
            }]));
            Rule::new(matches, Verdict::Dnat(*to))
        })
        .collect()
}

fn chain_text(table: &Table, rules: &[Rule]) -> Vec<String> {
    let mut out = Vec::with_capacity(rules.len());
    for rule in rules {
        match &rule.verdict {
            Verdict::DnatMap(name, _) => {
                out.extend(dnat_rules(rule, table.map(name)).iter().map(rule_text))
            }
            _ => out.push(rule_text(rule)),
        }
    }
    out
}

fn table_text(table: &Table) -> TextTable {
    TextTable {
        chains: table
            .chains
            .iter()
            .map(|(name, rules)| (name.clone(), chain_text(table, rules)))
            .collect(),
        hooks: table.hooks.clone(),
    }
}

/// Veth dispatch as a two-level tree keyed by the first character after
/// the veth prefix: a new endpoint rewrites one short chain, not one line
/// per endpoint of the host. An interface that is no endpoint of this host
/// finds no entry and returns unmarked; quarantined veths drop first.
fn dispatch_tree(table: &mut TextTable, dispatch: &Dispatch, direction: Direction) {
    let (root, flag) = match direction {
        Direction::From => (FROM_WL, "-i"),
        Direction::To => (TO_WL, "-o"),
    };
    let mut buckets: BTreeMap<char, Vec<String>> = BTreeMap::new();
    for (veth, chain) in dispatch.entries(direction) {
        let key = veth.chars().nth(VETH_PREFIX.len()).unwrap_or('_');
        buckets
            .entry(key)
            .or_default()
            .push(format!("{flag} {veth} -g {chain}"));
    }
    let mut top: Vec<String> = dispatch
        .quarantined
        .iter()
        .map(|veth| format!("{flag} {veth} -j DROP"))
        .collect();
    for (key, lines) in buckets {
        let chain = format!("{root}-{key}");
        top.push(format!("{flag} {VETH_PREFIX}{key}+ -g {chain}"));
        table.chain(&chain, lines);
    }
    table.chain(root, top);
}

/// The whole ruleset in iptables' words.
pub fn lay_out(ruleset: &Ruleset) -> TextRuleset {
    let mut filter = table_text(&ruleset.filter);
    dispatch_tree(&mut filter, &ruleset.dispatch, Direction::From);
    dispatch_tree(&mut filter, &ruleset.dispatch, Direction::To);
    TextRuleset {
        filter,
        nat: table_text(&ruleset.nat),
    }
}

/// A few typed filter chains in iptables' words, without dispatch.
pub fn filter_piece(table: &Table) -> TextTable {
    table_text(table)
}

#[cfg(test)]
mod tests {
    #[test]
    fn restore_text_declares_chains_before_rules_and_deletes_stale_ones() {
        let mut table = super::TextTable::default();
        table.chain("TABBY-A", vec!["-j ACCEPT".into()]);
        let text = table.restore_text("filter", &["TABBY-OLD".into()]);
        assert_eq!(
            text,
            "*filter\n:TABBY-A - [0:0]\n:TABBY-OLD - [0:0]\n-A TABBY-A -j ACCEPT\n-X TABBY-OLD\nCOMMIT\n"
        );
    }
}
