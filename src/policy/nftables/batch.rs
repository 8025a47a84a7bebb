//! The commands of one nftables transaction: the whole table at once, or
//! only what changed between two states. A new endpoint among thousands
//! is two chains, two map elements and its tag sets' new member.

use std::collections::BTreeSet;

use nftables::schema::{FlushObject, NfCmd, NfListObject};
use serde_json::{Value, json};

use super::dnat;
use super::ops::{Op, chains, dnat_maps, entries};
use super::translate::{self as t, map_name};
use crate::policy::model::{Direction, Rule, Ruleset, Table, Verdict};
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

fn hooks(ruleset: &Ruleset) -> impl Iterator<Item = &(String, String)> {
    ruleset.filter.hooks.iter().chain(&ruleset.nat.hooks)
}

/// Removes the table and everything in it.
pub fn drop_table() -> Vec<Value> {
    json(&[Op::DeleteTable])
}

/// The whole table, replacing any earlier one in the same transaction:
/// chains first, so every jump, map element and rule finds its target.
pub fn full(state: &PolicyState) -> Vec<Op> {
    let ruleset = &state.ruleset;
    let mut ops = vec![Op::AddTable, Op::DeleteTable, Op::AddTable];
    ops.extend(chains(ruleset).map(|(name, _)| Op::AddChain(name.clone())));
    let mut jumps = Vec::new();
    for (builtin, target) in hooks(ruleset) {
        if t::base_hook(builtin).is_some() {
            ops.push(Op::AddBaseChain(builtin.clone()));
            let jump = Rule::always(Verdict::Jump(target.clone()));
            jumps.push(Op::AddRule(builtin.to_lowercase(), jump));
        }
    }
    ops.extend(
        state
            .sets
            .iter()
            .map(|(name, members)| Op::AddSet(name.clone(), members.clone())),
    );
    for (name, map) in dnat_maps(ruleset) {
        ops.push(Op::AddDnatMaps(name.clone(), map.kind));
        if !map.entries.is_empty() {
            let entries = map.entries.iter().map(|(k, v)| (k.clone(), *v)).collect();
            ops.push(Op::AddDnatEntries(name.clone(), entries));
        }
    }
    for direction in [Direction::From, Direction::To] {
        ops.push(Op::AddMap(direction));
        let entries: Vec<_> = entries(&ruleset.dispatch, direction).into_iter().collect();
        if !entries.is_empty() {
            ops.push(Op::AddEntries(direction, entries));
        }
    }
    for (name, rules) in chains(ruleset) {
        ops.extend(rules.iter().map(|r| Op::AddRule(name.clone(), r.clone())));
    }
    ops.extend(jumps);
    ops
}

/// An operation in nft's JSON words: one command, or two for a DNAT
/// map's pair.
fn op_json(op: &Op) -> Vec<Value> {
    let pair = |[a, b]: [Value; 2], verb: &str| vec![json!({ verb: a }), json!({ verb: b })];
    let one = match op {
        Op::AddDnatMaps(name, kind) => return pair(dnat::declarations(name, *kind), "add"),
        Op::AddDnatEntries(name, entries) => {
            return pair(dnat::add_elements(name, entries), "add");
        }
        Op::DeleteDnatEntries(name, keys) => {
            return pair(dnat::key_elements(name, keys), "delete");
        }
        Op::AddTable => add(t::table()),
        Op::DeleteTable => delete(t::table()),
        Op::AddBaseChain(builtin) => add(t::base_chain(builtin).expect("a built-in hook")),
        Op::AddMap(direction) => json!({ "add": t::verdict_map(map_name(*direction)) }),
        Op::AddSet(name, members) => add(t::set(name, members)),
        Op::AddElements(name, members) => add(t::set_elements(name, members)),
        Op::DeleteElements(name, members) => delete(t::set_elements(name, members)),
        Op::DeleteSet(name) => delete(t::set(name, &BTreeSet::new())),
        Op::AddChain(name) => add(t::chain(name)),
        Op::FlushChain(name) => flush_chain(name),
        Op::AddRule(chain, rule) => add(t::rule(chain, rule)),
        Op::DeleteChain(name) => delete(t::chain(name)),
        Op::AddEntries(direction, entries) => {
            json!({ "add": t::map_elements(map_name(*direction), entries.iter().map(|(k, v)| (k, v))) })
        }
        Op::DeleteEntries(direction, entries) => {
            json!({ "delete": t::map_elements(map_name(*direction), entries.iter().map(|(k, v)| (k, v))) })
        }
    };
    vec![one]
}

/// A transaction's operations as nft commands.
pub fn json(ops: &[Op]) -> Vec<Value> {
    ops.iter().flat_map(op_json).collect()
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
