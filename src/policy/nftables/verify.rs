//! Reading the table back: what the kernel holds (`nft -j list table inet
//! tabby`) against what was applied. nft prints rules in its own words, so
//! rules are compared by the tag each carries in its comment; sets and maps
//! by their elements.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::dnat;
use super::ops::{dnat_maps, entries};
use super::translate::{Entry, TABLE, map_name, rule_tag};
use crate::policy::model::{Direction, Rule, Verdict};
use crate::policy::render::PolicyState;

/// A table as far as the comparison goes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct View {
    /// Chain -> the tags of its rules, in order.
    pub chains: BTreeMap<String, Vec<String>>,
    pub sets: BTreeMap<String, BTreeSet<String>>,
    /// Map -> interface -> "jump CHAIN" or "drop".
    pub maps: BTreeMap<String, BTreeMap<String, String>>,
}

fn entry_text(entry: &Entry) -> String {
    match entry {
        Entry::Jump(chain) => format!("jump {chain}"),
        Entry::Drop => "drop".into(),
    }
}

/// What the kernel should hold after `state` was applied.
pub fn desired(state: &PolicyState) -> View {
    let ruleset = &state.ruleset;
    let mut view = View::default();
    for (name, rules) in ruleset.filter.chains.iter().chain(&ruleset.nat.chains) {
        view.chains
            .insert(name.clone(), rules.iter().map(rule_tag).collect());
    }
    for (builtin, target) in ruleset.filter.hooks.iter().chain(&ruleset.nat.hooks) {
        let jump = Rule::always(Verdict::Jump(target.clone()));
        view.chains
            .insert(builtin.to_lowercase(), vec![rule_tag(&jump)]);
    }
    for (name, members) in &state.sets {
        let members = members.iter().map(|ip| ip.to_string()).collect();
        view.sets.insert(name.clone(), members);
    }
    for direction in [Direction::From, Direction::To] {
        let entries = entries(&ruleset.dispatch, direction)
            .iter()
            .map(|(veth, e)| (veth.clone(), entry_text(e)))
            .collect();
        view.maps.insert(map_name(direction).to_string(), entries);
    }
    for (name, map) in dnat_maps(ruleset) {
        let (mut to, mut port) = (BTreeMap::new(), BTreeMap::new());
        for (key, dest) in &map.entries {
            let key = element_text(&dnat::key_json(key));
            let [addr, p] = dnat::values_json(dest);
            to.insert(key.clone(), element_text(&addr));
            port.insert(key, element_text(&p));
        }
        view.maps.insert(name.clone(), to);
        view.maps.insert(dnat::port_map(name), port);
    }
    view
}

/// A key or value as listed: a string as itself, anything else (a
/// concatenation, a number) as its JSON.
fn element_text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

fn verdict_text(value: &Value) -> String {
    if let Some(target) = value.pointer("/jump/target").and_then(Value::as_str) {
        format!("jump {target}")
    } else if value.get("drop").is_some() {
        "drop".into()
    } else {
        element_text(value)
    }
}

fn elements(object: &Value) -> &[Value] {
    object
        .get("elem")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The kernel's table from `nft -j list table inet tabby` output.
pub fn kernel(listing: &Value) -> View {
    let mut view = View::default();
    let objects = listing
        .get("nftables")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let ours = |o: &Value| o.get("table").and_then(Value::as_str) == Some(TABLE);
    for object in objects {
        if let Some(chain) = object.get("chain").filter(|c| ours(c)) {
            let name = chain["name"].as_str().unwrap_or_default().to_string();
            view.chains.entry(name).or_default();
        } else if let Some(rule) = object.get("rule").filter(|r| ours(r)) {
            let chain = rule["chain"].as_str().unwrap_or_default().to_string();
            let tag = rule["comment"].as_str().unwrap_or("(no tag)").to_string();
            view.chains.entry(chain).or_default().push(tag);
        } else if let Some(set) = object.get("set").filter(|s| ours(s)) {
            let members = elements(set)
                .iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                .collect();
            let name = set["name"].as_str().unwrap_or_default().to_string();
            view.sets.insert(name, members);
        } else if let Some(map) = object.get("map").filter(|m| ours(m)) {
            let entries = elements(map)
                .iter()
                .filter_map(|pair| {
                    let key = element_text(pair.get(0)?);
                    Some((key, verdict_text(pair.get(1)?)))
                })
                .collect();
            let name = map["name"].as_str().unwrap_or_default().to_string();
            view.maps.insert(name, entries);
        }
    }
    view
}

/// How the kernel differs from what is wanted, a line each (at most a
/// few, then a count).
pub fn differences(want: &View, have: &View) -> Vec<String> {
    let mut found = Vec::new();
    for (name, tags) in &want.chains {
        match have.chains.get(name) {
            None => found.push(format!("chain {name} missing")),
            Some(now) if now != tags => found.push(format!(
                "chain {name}: {} rule(s) not as applied",
                tags.len().max(now.len())
            )),
            Some(_) => {}
        }
    }
    for name in have.chains.keys().filter(|n| !want.chains.contains_key(*n)) {
        found.push(format!("chain {name} is not tabby's to have"));
    }
    for (name, members) in &want.sets {
        if have.sets.get(name) != Some(members) {
            found.push(format!("set {name}: members changed"));
        }
    }
    for (name, entries) in &want.maps {
        if have.maps.get(name) != Some(entries) {
            found.push(format!("map {name}: entries changed"));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_listing_is_read_into_chains_sets_and_maps() {
        let listing = json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "tabby"}},
            {"set": {"family": "inet", "table": "tabby", "name": "tabby-t-A", "type": "ipv4_addr", "elem": ["198.18.64.1"]}},
            {"map": {"family": "inet", "table": "tabby", "name": "tabby-from-wl", "type": "ifname", "map": "verdict",
                     "elem": [["tabbyq", {"drop": null}], ["tabbya", {"jump": {"target": "TABBY-FW-a"}}]]}},
            {"chain": {"family": "inet", "table": "tabby", "name": "TABBY-FW-a"}},
            {"chain": {"family": "inet", "table": "tabby", "name": "empty"}},
            {"rule": {"family": "inet", "table": "tabby", "chain": "TABBY-FW-a", "comment": "t1", "expr": []}},
            {"rule": {"family": "inet", "table": "tabby", "chain": "TABBY-FW-a", "expr": []}},
        ]});
        let view = kernel(&listing);
        assert_eq!(view.chains["TABBY-FW-a"], ["t1", "(no tag)"]);
        assert!(view.chains["empty"].is_empty());
        assert_eq!(view.sets["tabby-t-A"], ["198.18.64.1".to_string()].into());
        assert_eq!(view.maps["tabby-from-wl"]["tabbya"], "jump TABBY-FW-a");
        assert_eq!(view.maps["tabby-from-wl"]["tabbyq"], "drop");
    }

    #[test]
    fn what_was_applied_has_no_differences_and_a_flushed_chain_has() {
        let eps = [crate::model::Endpoint::for_test(
            &"a".repeat(64),
            "h1",
            "198.18.64.1",
        )];
        let state = crate::policy::render(&crate::policy::PolicyInput {
            local: &eps,
            all: &eps,
            profiles: &[crate::policy::rules::default_profile("n")],
            exposures: &[],
            quarantined: &[],
            vxlan_peers: None,
        });
        let want = desired(&state);
        let mut have = desired(&state);
        assert!(differences(&want, &have).is_empty());
        have.chains.insert("TABBY-FORWARD".into(), Vec::new());
        have.sets.clear();
        let found = differences(&want, &have);
        assert_eq!(
            found.len(),
            3,
            "the chain and both sets of tag n: {found:?}"
        );
    }
}
