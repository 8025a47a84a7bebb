//! iptables sees IPv4 only: the rules and sets that concern IPv6 are left
//! out of what this backend programs (a dual-stack network needs the
//! nftables backend, whose inet table sees both families).

use ipnet::IpNet;

use crate::policy::model::{Match, Rule, Table};
use crate::policy::names::is_ipv6_set;
use crate::policy::render::PolicyState;

fn is_ipv6(m: &Match) -> bool {
    let v6 = |net: &IpNet| net.addr().is_ipv6();
    match m {
        Match::Ipv6 | Match::Icmp6 | Match::Icmp6Type(_) => true,
        Match::Src(net) | Match::NotSrc(net) | Match::Dst(net) => v6(net),
        Match::SrcSet(set) | Match::DstSet(set) => is_ipv6_set(set),
        _ => false,
    }
}

fn ipv4_rules(rules: &[Rule]) -> Vec<Rule> {
    rules
        .iter()
        .filter(|r| !r.matches.iter().any(is_ipv6))
        .cloned()
        .collect()
}

pub fn ipv4_table(table: &Table) -> Table {
    Table {
        chains: table
            .chains
            .iter()
            .map(|(name, rules)| (name.clone(), ipv4_rules(rules)))
            .collect(),
        ..table.clone()
    }
}

/// The state without its IPv6 rules and sets.
pub fn ipv4_only(state: &PolicyState) -> PolicyState {
    let mut out = state.clone();
    out.ruleset.filter = ipv4_table(&state.ruleset.filter);
    out.ruleset.nat = ipv4_table(&state.ruleset.nat);
    out.sets.retain(|name, _| !is_ipv6_set(name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::Verdict;

    #[test]
    fn ipv6_rules_and_sets_are_left_out() {
        let v6: IpNet = "2001:2::1/128".parse().unwrap();
        let v4: IpNet = "198.18.0.1/32".parse().unwrap();
        let rules = vec![
            Rule::new(vec![Match::NotSrc(v4)], Verdict::Drop),
            Rule::new(vec![Match::NotSrc(v6)], Verdict::Drop),
            Rule::new(vec![Match::Ipv6], Verdict::Drop),
            Rule::new(vec![Match::SrcSet("tabby-6-db".into())], Verdict::Accept),
            Rule::new(vec![Match::SrcSet("tabby-t-db".into())], Verdict::Accept),
        ];
        let mut state = PolicyState::default();
        state.ruleset.filter.chain("C", rules.clone());
        state.sets.insert("tabby-6-db".into(), Default::default());
        state.sets.insert("tabby-t-db".into(), Default::default());
        let out = ipv4_only(&state);
        assert_eq!(
            out.ruleset.filter.chains[0].1,
            vec![rules[0].clone(), rules[4].clone()]
        );
        assert_eq!(out.sets.keys().collect::<Vec<_>>(), ["tabby-t-db"]);
    }
}
