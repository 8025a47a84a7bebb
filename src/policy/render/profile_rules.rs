//! Profile rules and tag sets, for both families. A rule with a CIDR
//! applies to the CIDR's family; one with a tag, or for ICMP (ICMPv6 is
//! another protocol), is written once per family (a tag has a set per
//! family); any other is a single rule the inet table applies to both.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::super::model::{Match, Rule, Sets, Verdict};
use super::super::names::{tag_set, tag_set6};
use super::PolicyInput;
use crate::model::{self, Action, RuleMatch};

/// The families a rule is written out for: Some(true) is IPv6, None a
/// rule with no address match (one rule, both families).
fn families(rule: &model::Rule) -> Vec<Option<bool>> {
    let cidr = rule.from.cidr.or(rule.to.cidr);
    if let Some(cidr) = cidr {
        return vec![Some(cidr.addr().is_ipv6())];
    }
    let icmp = rule.protocol == Some(model::Protocol::Icmp);
    if icmp || rule.from.tag.is_some() || rule.to.tag.is_some() {
        return vec![Some(false), Some(true)];
    }
    vec![None]
}

fn side_matches(m: &RuleMatch, src: bool, v6: Option<bool>, out: &mut Vec<Match>) {
    if let Some(cidr) = m.cidr {
        out.push(if src {
            Match::Src(cidr)
        } else {
            Match::Dst(cidr)
        });
    }
    if let Some(tag) = &m.tag {
        let set = match v6 {
            Some(true) => tag_set6(tag),
            _ => tag_set(tag),
        };
        out.push(if src {
            Match::SrcSet(set)
        } else {
            Match::DstSet(set)
        });
    }
    if !m.ports.is_empty() {
        let ports = m.ports.clone();
        out.push(if src {
            Match::SrcPorts(ports)
        } else {
            Match::DstPorts(ports)
        });
    }
}

/// One profile rule, once per family it applies to: an allow marks (and
/// then returns, once), a deny drops.
pub fn profile_rule(rule: &model::Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    for v6 in families(rule) {
        let mut matches = Vec::new();
        match rule.protocol {
            Some(model::Protocol::Icmp) if v6 == Some(true) => matches.push(Match::Icmp6),
            Some(p) => matches.push(Match::Protocol(p)),
            None => {}
        }
        side_matches(&rule.from, true, v6, &mut matches);
        side_matches(&rule.to, false, v6, &mut matches);
        out.push(Rule::new(
            matches,
            match rule.action {
                Action::Deny => Verdict::Drop,
                Action::Allow => Verdict::MarkAccepted,
            },
        ));
    }
    if rule.action == Action::Allow {
        out.push(Rule::new(vec![Match::Accepted], Verdict::Return));
    }
    out
}

/// Tag set -> addresses of every endpoint whose profiles carry the tag,
/// for every tag a profile names: an IPv4 and an IPv6 set each.
pub fn tag_sets(input: &PolicyInput) -> Sets {
    let mut referenced: BTreeSet<&String> = BTreeSet::new();
    for profile in input.profiles {
        for rule in profile.inbound.iter().chain(&profile.outbound) {
            referenced.extend(rule.from.tag.iter().chain(&rule.to.tag));
        }
        referenced.extend(profile.tags.iter());
    }
    let tags_of: HashMap<&str, &BTreeSet<String>> = input
        .profiles
        .iter()
        .map(|p| (p.name.as_str(), &p.tags))
        .collect();
    let mut sets: Sets = referenced
        .iter()
        .flat_map(|t| [tag_set(t), tag_set6(t)])
        .map(|name| (name, BTreeSet::<IpAddr>::new()))
        .collect();
    for ep in input.all {
        for tag in ep
            .profiles
            .iter()
            .filter_map(|p| tags_of.get(p.as_str()))
            .flat_map(|t| t.iter())
        {
            if let Some(set) = sets.get_mut(&tag_set(tag)) {
                set.insert(ep.ip.into());
            }
            if let (Some(ip6), Some(set)) = (ep.ip6, sets.get_mut(&tag_set6(tag))) {
                set.insert(ip6.into());
            }
        }
    }
    sets
}
