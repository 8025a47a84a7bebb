//! The commands of one nftables transaction: the whole table at once, or
//! only what changed between two states. A new endpoint among thousands
//! is two chains, two map elements and its tag sets' new member.

use std::collections::{BTreeMap, BTreeSet};

use nftables::schema::{FlushObject, NfCmd, NfListObject};
use serde_json::{Value, json};

use super::translate::{self as t, Entry, map_name};
use crate::policy::model::{Direction, Dispatch, Rule, Ruleset, Table};
use crate::policy::render::PolicyState;

fn add(obj: NfListObject<'static>) -> Value {
    serde_json::to_value(NfCmd::Add(obj)).expect("serializable")
}

fn delete(obj: NfListObject<'static>) -> Value {
    serde_json::to_value(NfCmd::Delete(obj)).expect("serializable")
}

fn flush_chain(name: &str) -> Value {
    let NfListObject::Chain(chain) = t::chain(name) else {
        unreachable!("t::chain makes a chain")
    };
    serde_json::to_value(NfCmd::Flush(FlushObject::Chain(chain))).expect("serializable")
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

fn chains(ruleset: &Ruleset) -> impl Iterator<Item = &(String, Vec<Rule>)> {
    ruleset.filter.chains.iter().chain(&ruleset.nat.chains)
}

fn hooks(ruleset: &Ruleset) -> impl Iterator<Item = &(String, String)> {
    ruleset.filter.hooks.iter().chain(&ruleset.nat.hooks)
}

/// Removes the table and everything in it.
pub fn drop_table() -> Vec<Value> {
    vec![delete(t::table())]
}

/// The whole table, replacing any earlier one in the same transaction.
pub fn full(state: &PolicyState) -> Vec<Value> {
    let ruleset = &state.ruleset;
    let mut cmds = vec![add(t::table()), delete(t::table()), add(t::table())];
    cmds.extend(chains(ruleset).map(|(name, _)| add(t::chain(name))));
    let mut jumps = Vec::new();
    for (builtin, target) in hooks(ruleset) {
        if let Some([base, jump]) = t::base_chain(builtin, target) {
            cmds.push(add(base));
            jumps.push(add(jump));
        }
    }
    cmds.extend(state.sets.iter().map(|(name, m)| add(t::set(name, m))));
    for direction in [Direction::From, Direction::To] {
        let map = map_name(direction);
        cmds.push(json!({ "add": t::verdict_map(map) }));
        let entries = entries(&ruleset.dispatch, direction);
        if !entries.is_empty() {
            cmds.push(json!({ "add": t::map_elements(map, &entries) }));
        }
    }
    for (name, rules) in chains(ruleset) {
        cmds.extend(rules.iter().map(|r| add(t::rule(name, r))));
    }
    cmds.extend(jumps);
    cmds
}

fn chain_map(ruleset: &Ruleset) -> BTreeMap<&str, &[Rule]> {
    chains(ruleset)
        .map(|(n, r)| (n.as_str(), r.as_slice()))
        .collect()
}

/// Only what changed from `before` to `after`, in an order the kernel
/// accepts in one transaction: new sets and chains first, then rules and
/// map elements, and what is no longer wanted last, once nothing refers
/// to it. `None` when the hooks changed: then the whole table goes anew.
pub fn changes(before: &PolicyState, after: &PolicyState) -> Option<Vec<Value>> {
    let (old, new) = (&before.ruleset, &after.ruleset);
    if old.filter.hooks != new.filter.hooks || old.nat.hooks != new.nat.hooks {
        return None;
    }
    let mut cmds = Vec::new();
    let mut removals = Vec::new();
    set_changes(&before.sets, &after.sets, &mut cmds, &mut removals);
    let (old_chains, new_chains) = (chain_map(old), chain_map(new));
    for (name, rules) in &new_chains {
        match old_chains.get(name) {
            Some(was) if was == rules => continue,
            Some(_) => cmds.push(flush_chain(name)),
            None => cmds.push(add(t::chain(name))),
        }
        cmds.extend(rules.iter().map(|r| add(t::rule(name, r))));
    }
    for direction in [Direction::From, Direction::To] {
        let map = map_name(direction);
        let (was, now) = (
            entries(&old.dispatch, direction),
            entries(&new.dispatch, direction),
        );
        let gone: Vec<_> = was.iter().filter(|(k, v)| now.get(*k) != Some(v)).collect();
        let came: Vec<_> = now.iter().filter(|(k, v)| was.get(*k) != Some(v)).collect();
        if !gone.is_empty() {
            cmds.push(json!({ "delete": t::map_elements(map, gone) }));
        }
        if !came.is_empty() {
            cmds.push(json!({ "add": t::map_elements(map, came) }));
        }
    }
    for name in old_chains.keys().filter(|n| !new_chains.contains_key(*n)) {
        removals.insert(0, flush_chain(name));
        removals.push(delete(t::chain(name)));
    }
    cmds.extend(removals);
    Some(cmds)
}

fn set_changes(
    before: &crate::policy::model::Sets,
    after: &crate::policy::model::Sets,
    cmds: &mut Vec<Value>,
    removals: &mut Vec<Value>,
) {
    for (name, members) in after {
        let Some(was) = before.get(name) else {
            cmds.push(add(t::set(name, members)));
            continue;
        };
        let came: BTreeSet<_> = members.difference(was).copied().collect();
        let gone: BTreeSet<_> = was.difference(members).copied().collect();
        if !came.is_empty() {
            cmds.push(add(t::set_elements(name, &came)));
        }
        if !gone.is_empty() {
            cmds.push(delete(t::set_elements(name, &gone)));
        }
    }
    for name in before.keys().filter(|n| !after.contains_key(*n)) {
        removals.push(delete(t::set(name, &BTreeSet::new())));
    }
}

/// A few filter chains on their own, with the sets their rules name (made
/// empty if missing): to learn which profile the kernel refuses.
pub fn piece(filter: &Table, sets: &BTreeSet<String>) -> Vec<Value> {
    let mut cmds = vec![add(t::table())];
    cmds.extend(sets.iter().map(|s| add(t::set(s, &BTreeSet::new()))));
    for (name, rules) in &filter.chains {
        cmds.push(add(t::chain(name)));
        cmds.push(flush_chain(name));
        cmds.extend(rules.iter().map(|r| add(t::rule(name, r))));
    }
    cmds
}
