//! iptables sees one family a tool: the typed ruleset (written for both,
//! as nftables' inet table takes it) is cut into what `iptables` programs
//! and what `ip6tables` programs. A rule goes to the family its addresses,
//! sets and ICMP flavour name, or to both when it names none.

use std::process::Command;
use std::sync::OnceLock;

use ipnet::IpNet;

use crate::model::Protocol;
use crate::policy::model::{Match, Rule, Table};
use crate::policy::names::{SET_PREFIX, SET6_PREFIX, is_ipv6_set};
use crate::policy::render::PolicyState;

/// One address family and the tools that program it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn is_v6(self) -> bool {
        self == Family::V6
    }

    pub fn iptables(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    pub fn restore(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }

    pub fn save(self) -> &'static str {
        match self {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        }
    }

    /// ipset's word for the family of a `hash:ip` set.
    pub fn ipset_family(self) -> &'static str {
        match self {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        }
    }

    /// The prefix of this family's tag sets (ipset's names are global).
    pub fn set_prefix(self) -> &'static str {
        match self {
            Family::V4 => SET_PREFIX,
            Family::V6 => SET6_PREFIX,
        }
    }

    /// The set a swap fills aside; a swap needs both of one family.
    pub fn swap_set(self) -> &'static str {
        match self {
            Family::V4 => "tabby-swap",
            Family::V6 => "tabby-swap6",
        }
    }

    /// The families whose tools work here: IPv4, and IPv6 unless the
    /// kernel has no ip6tables tables (a host booted without IPv6 has an
    /// `ip6tables` that cannot work). Asked once per process: the answer
    /// does not change under a running agent.
    pub fn working() -> &'static [Family] {
        static WORKING: OnceLock<Vec<Family>> = OnceLock::new();
        WORKING.get_or_init(|| {
            let ipv6 = Command::new(Family::V6.iptables())
                .args(["-w", "-t", "filter", "-S", "INPUT"])
                .output()
                .is_ok_and(|o| o.status.success());
            [Family::V4]
                .into_iter()
                .chain(ipv6.then_some(Family::V6))
                .collect()
        })
    }

    fn of_set(set: &str) -> Family {
        if is_ipv6_set(set) {
            Family::V6
        } else {
            Family::V4
        }
    }

    fn of_net(net: &IpNet) -> Family {
        if net.addr().is_ipv6() {
            Family::V6
        } else {
            Family::V4
        }
    }
}

/// The family a match confines its rule to; None: it fits both.
fn match_family(m: &Match) -> Option<Family> {
    match m {
        Match::Ipv6 | Match::Icmp6 | Match::Icmp6Type(_) => Some(Family::V6),
        Match::Protocol(Protocol::Icmp) => Some(Family::V4),
        Match::Src(net) | Match::NotSrc(net) | Match::Dst(net) => Some(Family::of_net(net)),
        Match::SrcSet(set) | Match::DstSet(set) => Some(Family::of_set(set)),
        _ => None,
    }
}

/// The rules of `family`, each as its tool takes it: "any IPv6 packet" is
/// every packet ip6tables sees, so it is left out of the rule.
fn family_rules(rules: &[Rule], family: Family) -> Vec<Rule> {
    rules
        .iter()
        .filter(|r| {
            r.matches
                .iter()
                .all(|m| match_family(m) != Some(other(family)))
        })
        .map(|r| Rule {
            matches: r
                .matches
                .iter()
                .filter(|m| **m != Match::Ipv6)
                .cloned()
                .collect(),
            verdict: r.verdict.clone(),
        })
        .collect()
}

fn other(family: Family) -> Family {
    match family {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    }
}

/// The chains of `table` with the rules and DNAT maps of `family` (a
/// map's entries all go to addresses of its kind's family).
pub fn family_table(table: &Table, family: Family) -> Table {
    Table {
        chains: table
            .chains
            .iter()
            .map(|(name, rules)| (name.clone(), family_rules(rules, family)))
            .collect(),
        hooks: table.hooks.clone(),
        maps: table
            .maps
            .iter()
            .filter(|(_, map)| map.kind.v6 == family.is_v6())
            .cloned()
            .collect(),
    }
}

/// What one family's tools program of the state: its rules and its sets.
pub fn family_state(state: &PolicyState, family: Family) -> PolicyState {
    let mut out = PolicyState::default();
    out.ruleset.filter = family_table(&state.ruleset.filter, family);
    out.ruleset.nat = family_table(&state.ruleset.nat, family);
    out.ruleset.dispatch = state.ruleset.dispatch.clone();
    out.sets = state
        .sets
        .iter()
        .filter(|(name, _)| Family::of_set(name) == family)
        .map(|(name, members)| (name.clone(), members.clone()))
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::Verdict;

    #[test]
    fn each_family_gets_its_rules_and_sets_and_both_get_the_rest() {
        let v6: IpNet = "2001:2::1/128".parse().unwrap();
        let v4: IpNet = "198.18.0.1/32".parse().unwrap();
        let rule = |m: Vec<Match>, v| Rule::new(m, v);
        let rules = vec![
            rule(vec![Match::NotSrc(v4)], Verdict::Drop),
            rule(vec![Match::NotSrc(v6)], Verdict::Drop),
            rule(vec![Match::Ipv6], Verdict::Drop),
            rule(vec![Match::SrcSet("tabby-6-db".into())], Verdict::Accept),
            rule(vec![Match::SrcSet("tabby-t-db".into())], Verdict::Accept),
            rule(vec![Match::Protocol(Protocol::Icmp)], Verdict::Accept),
            rule(vec![Match::Icmp6Type(135)], Verdict::Accept),
            rule(vec![Match::Protocol(Protocol::Tcp)], Verdict::Accept),
            Rule::always(Verdict::Drop),
        ];
        let mut state = PolicyState::default();
        state.ruleset.filter.chain("C", rules.clone());
        state.sets.insert("tabby-6-db".into(), Default::default());
        state.sets.insert("tabby-t-db".into(), Default::default());
        let v4_state = family_state(&state, Family::V4);
        let pick = |i: &[usize]| i.iter().map(|&i| rules[i].clone()).collect::<Vec<_>>();
        assert_eq!(v4_state.ruleset.filter.chains[0].1, pick(&[0, 4, 5, 7, 8]));
        assert_eq!(v4_state.sets.keys().collect::<Vec<_>>(), ["tabby-t-db"]);
        let v6_state = family_state(&state, Family::V6);
        let mut want = pick(&[1, 2, 3, 6, 7, 8]);
        // Every packet ip6tables sees is IPv6: the match goes.
        want[1] = Rule::always(Verdict::Drop);
        assert_eq!(v6_state.ruleset.filter.chains[0].1, want);
        assert_eq!(v6_state.sets.keys().collect::<Vec<_>>(), ["tabby-6-db"]);
    }
}
