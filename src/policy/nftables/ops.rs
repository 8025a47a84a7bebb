//! One transaction's changes as typed operations, computed from two
//! policy states. Both writers take them: nft's JSON (any change) and the
//! kernel's netlink protocol (the hot path: endpoint chains, map and set
//! elements), so what changes is decided once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use super::translate::Entry;
use crate::policy::model::{Direction, Dispatch, DnatKey, DnatKind, DnatMap, Rule, Ruleset, Sets};
use crate::policy::render::PolicyState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `inet tabby` (adding an existing table changes nothing).
    AddTable,
    DeleteTable,
    /// The base chain of a built-in hook (`FORWARD`...), named after it in
    /// lower case.
    AddBaseChain(String),
    /// An empty dispatch map: interface name -> verdict.
    AddMap(Direction),
    /// A new tag set with its members.
    AddSet(String, BTreeSet<IpAddr>),
    AddElements(String, BTreeSet<IpAddr>),
    DeleteElements(String, BTreeSet<IpAddr>),
    DeleteSet(String),
    AddChain(String),
    /// Removes every rule of a chain.
    FlushChain(String),
    /// Appends a rule at the chain's end.
    AddRule(String, Rule),
    DeleteChain(String),
    AddEntries(Direction, Vec<(String, Entry)>),
    DeleteEntries(Direction, Vec<(String, Entry)>),
    /// The two empty maps of a kind of exposed port (`dnat`).
    AddDnatMaps(String, DnatKind),
    AddDnatEntries(String, Vec<(DnatKey, SocketAddr)>),
    DeleteDnatEntries(String, Vec<DnatKey>),
}

impl Op {
    /// Whether the operation only takes something away: no rule, member,
    /// entry or verdict appears.
    pub fn only_removes(&self) -> bool {
        matches!(
            self,
            Op::DeleteElements(..)
                | Op::DeleteEntries(..)
                | Op::DeleteDnatEntries(..)
                | Op::FlushChain(_)
                | Op::DeleteChain(_)
                | Op::DeleteSet(_)
        )
    }
}

/// Dispatch entries per interface; a quarantined veth only drops.
pub fn entries(dispatch: &Dispatch, direction: Direction) -> BTreeMap<String, Entry> {
    let mut out: BTreeMap<String, Entry> = dispatch
        .entries(direction)
        .iter()
        .map(|(veth, chain)| (veth.clone(), Entry::Jump(chain.clone())))
        .collect();
    for veth in &dispatch.quarantined {
        out.insert(veth.clone(), Entry::Drop);
    }
    out
}

/// Every DNAT map of both tables.
pub fn dnat_maps(ruleset: &Ruleset) -> impl Iterator<Item = &(String, DnatMap)> {
    ruleset.filter.maps.iter().chain(&ruleset.nat.maps)
}

/// Every chain of both tables.
pub fn chains(ruleset: &Ruleset) -> impl Iterator<Item = &(String, Vec<Rule>)> {
    ruleset.filter.chains.iter().chain(&ruleset.nat.chains)
}

fn chain_map(ruleset: &Ruleset) -> HashMap<&str, &[Rule]> {
    let mut map = HashMap::with_capacity(ruleset.filter.chains.len() + ruleset.nat.chains.len());
    map.extend(chains(ruleset).map(|(n, r)| (n.as_str(), r.as_slice())));
    map
}

/// Only what changed from `before` to `after`, in an order the kernel
/// accepts in one transaction: new sets and chains first, then rules and
/// map elements, and what is no longer wanted last, once nothing refers
/// to it. `None` when the hooks changed: then the whole table goes anew.
pub fn changes(before: &PolicyState, after: &PolicyState) -> Option<Vec<Op>> {
    let (old, new) = (&before.ruleset, &after.ruleset);
    if old.filter.hooks != new.filter.hooks || old.nat.hooks != new.nat.hooks {
        return None;
    }
    let kinds = |r: &Ruleset| {
        dnat_maps(r)
            .map(|(n, m)| (n.clone(), m.kind))
            .collect::<Vec<_>>()
    };
    if kinds(old) != kinds(new) {
        return None;
    }
    let mut ops = Vec::new();
    let mut removals = Vec::new();
    set_changes(&before.sets, &after.sets, &mut ops, &mut removals);
    let old_chains = chain_map(old);
    for (name, rules) in chains(new) {
        match old_chains.get(name.as_str()) {
            Some(was) if *was == rules.as_slice() => continue,
            Some(_) => ops.push(Op::FlushChain(name.clone())),
            None => ops.push(Op::AddChain(name.clone())),
        }
        ops.extend(rules.iter().map(|r| Op::AddRule(name.clone(), r.clone())));
    }
    for direction in [Direction::From, Direction::To] {
        entry_changes(old, new, direction, &mut ops);
    }
    for ((name, was), (_, now)) in dnat_maps(old).zip(dnat_maps(new)) {
        dnat_changes(name, was, now, &mut ops);
    }
    let new_chains = chain_map(new);
    for (name, _) in chains(old).filter(|(n, _)| !new_chains.contains_key(n.as_str())) {
        removals.insert(0, Op::FlushChain(name.clone()));
        removals.push(Op::DeleteChain(name.clone()));
    }
    ops.extend(removals);
    Some(ops)
}

/// Entries of `a` that `b` lacks or holds with another value.
fn differing<K: Ord + Clone, V: PartialEq + Clone>(
    a: &BTreeMap<K, V>,
    b: &BTreeMap<K, V>,
) -> Vec<(K, V)> {
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Entries gone or changed are deleted, then new and changed ones added.
fn entry_changes(old: &Ruleset, new: &Ruleset, direction: Direction, ops: &mut Vec<Op>) {
    let (was, now) = (
        entries(&old.dispatch, direction),
        entries(&new.dispatch, direction),
    );
    let gone = differing(&was, &now);
    let came = differing(&now, &was);
    if !gone.is_empty() {
        ops.push(Op::DeleteEntries(direction, gone));
    }
    if !came.is_empty() {
        ops.push(Op::AddEntries(direction, came));
    }
}

/// The same for a DNAT map, whose deletions name keys only.
fn dnat_changes(name: &str, was: &DnatMap, now: &DnatMap, ops: &mut Vec<Op>) {
    let gone: Vec<DnatKey> = differing(&was.entries, &now.entries)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let came = differing(&now.entries, &was.entries);
    if !gone.is_empty() {
        ops.push(Op::DeleteDnatEntries(name.to_string(), gone));
    }
    if !came.is_empty() {
        ops.push(Op::AddDnatEntries(name.to_string(), came));
    }
}

fn set_changes(before: &Sets, after: &Sets, ops: &mut Vec<Op>, removals: &mut Vec<Op>) {
    for (name, members) in after {
        let Some(was) = before.get(name) else {
            ops.push(Op::AddSet(name.clone(), members.clone()));
            continue;
        };
        let came: BTreeSet<_> = members.difference(was).copied().collect();
        let gone: BTreeSet<_> = was.difference(members).copied().collect();
        if !came.is_empty() {
            ops.push(Op::AddElements(name.clone(), came));
        }
        if !gone.is_empty() {
            ops.push(Op::DeleteElements(name.clone(), gone));
        }
    }
    for name in before.keys().filter(|n| !after.contains_key(*n)) {
        removals.push(Op::DeleteSet(name.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Endpoint;
    use crate::policy::{PolicyInput, render, rules::default_profile};

    fn state(endpoints: &[Endpoint]) -> PolicyState {
        render(&PolicyInput {
            local: endpoints,
            all: endpoints,
            profiles: &[default_profile("n")],
            exposures: &[],
            quarantined: &[],
            vxlan_peers: None,
        })
    }

    /// Only a change that takes away may be committed behind its caller's
    /// back; one that adds anything is committed before `apply` returns.
    #[test]
    fn an_endpoint_going_only_removes_and_one_coming_does_not() {
        let a = Endpoint::for_test(&"a".repeat(64), "h1", "198.18.64.1");
        let b = Endpoint::for_test(&"b".repeat(64), "h1", "198.18.64.2");
        let (one, two) = (state(std::slice::from_ref(&a)), state(&[a, b]));
        let gone = changes(&two, &one).expect("same hooks");
        assert!(
            !gone.is_empty() && gone.iter().all(Op::only_removes),
            "{gone:?}"
        );
        let came = changes(&one, &two).expect("same hooks");
        assert!(!came.iter().all(Op::only_removes), "{came:?}");
    }
}
