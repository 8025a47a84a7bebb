//! Drift repair: the iptables backend remembers what it applied and skips
//! what did not change, so a chain flushed by hand, a set emptied or a
//! FORWARD rewritten by a dockerd restart would stay broken until etcd
//! changed. A periodic check reads the kernel back (`iptables-save`,
//! `ipset save`), compares it with what was applied, and rewrites only
//! what drifted, saying what it repaired.
//!
//! iptables prints rules in its own canonical form, which is not the text
//! tabby renders; a chain is therefore judged by its rule count until it
//! has been seen intact once, and by exact text against that reading after.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use super::Applied;
use super::family::Family;
use super::text::TextTable as Table;
use crate::policy::firewall::{Error, run};

/// Chains (tabby's and the built-ins it hooks) as the kernel holds them.
pub type KernelTable = BTreeMap<String, Vec<String>>;

/// Per (table, chain): the rules applied and the kernel's reading of them
/// when it was last seen intact.
#[derive(Debug, Default)]
pub struct Baseline(HashMap<(String, String), (Vec<String>, Vec<String>)>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A tabby chain to rewrite whole.
    Chain { chain: String, reason: String },
    /// A built-in chain whose first rules are not tabby's hooks.
    Hook { builtin: String },
}

/// Parses one table of `iptables-save`.
pub fn parse_save(text: &str) -> KernelTable {
    let mut table = KernelTable::new();
    for line in text.lines() {
        if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or_default();
            table.entry(name.to_string()).or_default();
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let (chain, spec) = rule.split_once(' ').unwrap_or((rule, ""));
            table
                .entry(chain.to_string())
                .or_default()
                .push(spec.to_string());
        }
    }
    table
}

/// Parses `ipset save`: tabby's sets whose names start with `prefix` (one
/// family's) and their members.
pub fn parse_sets(text: &str, prefix: &str) -> BTreeMap<String, BTreeSet<IpAddr>> {
    let mut sets: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(verb), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        if !name.starts_with(prefix) {
            continue;
        }
        let members = sets.entry(name.to_string()).or_default();
        if verb == "add"
            && let Some(ip) = words.next().and_then(|w| w.parse().ok())
        {
            members.insert(ip);
        }
    }
    sets
}

/// What differs between the applied `desired` table and the kernel's.
/// Chains seen intact become the baseline of later checks.
pub fn find(
    name: &str,
    desired: &Table,
    kernel: &KernelTable,
    base: &mut Baseline,
) -> Vec<Finding> {
    let mut found = Vec::new();
    for (chain, rules) in &desired.chains {
        let key = (name.to_string(), chain.clone());
        let reason = match (kernel.get(chain), base.0.get(&key)) {
            (None, _) => Some("chain missing".to_string()),
            (Some(now), _) if now.len() != rules.len() => {
                Some(format!("{} rule(s) instead of {}", now.len(), rules.len()))
            }
            (Some(now), Some((applied, seen))) if applied == rules => {
                (now != seen).then(|| "rules changed by hand".to_string())
            }
            (Some(_), _) => None,
        };
        match reason {
            Some(reason) => {
                base.0.remove(&key);
                found.push(Finding::Chain {
                    chain: chain.clone(),
                    reason,
                });
            }
            None => {
                base.0.insert(key, (rules.clone(), kernel[chain].clone()));
            }
        }
    }
    let mut builtins: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (builtin, chain) in &desired.hooks {
        builtins
            .entry(builtin)
            .or_default()
            .insert(format!("-j {chain}"));
    }
    for (builtin, jumps) in builtins {
        let rules = kernel.get(builtin).map(Vec::as_slice).unwrap_or_default();
        let leading: BTreeSet<String> = rules.iter().take(jumps.len()).cloned().collect();
        if leading != jumps {
            found.push(Finding::Hook {
                builtin: builtin.to_string(),
            });
        }
    }
    found
}

/// Puts tabby's hooks first in `builtin` again (ours only are removed).
fn rehook(
    family: Family,
    table: &str,
    builtin: &str,
    hooks: &[(String, String)],
) -> Result<(), Error> {
    for (_, chain) in hooks.iter().filter(|(b, _)| b == builtin) {
        let rule = ["-w", "-t", table, "-D", builtin, "-j", chain];
        while run(family.iptables(), &rule, None).is_ok() {}
        run(
            family.iptables(),
            &["-w", "-t", table, "-I", builtin, "1", "-j", chain],
            None,
        )?;
    }
    Ok(())
}

fn repair_table(
    family: Family,
    name: &str,
    desired: &Table,
    base: &mut Baseline,
) -> Result<Vec<String>, Error> {
    let kernel = parse_save(&run(family.save(), &["-t", name], None)?);
    let tool = family.iptables();
    let mut chains = Table::default();
    let mut repaired = Vec::new();
    for finding in find(name, desired, &kernel, base) {
        match finding {
            Finding::Chain { chain, reason } => {
                let rules = desired.chains.iter().find(|(n, _)| *n == chain);
                if let Some((_, rules)) = rules {
                    chains.chain(&chain, rules.clone());
                }
                repaired.push(format!("{tool} {name} chain {chain}: {reason}"));
            }
            Finding::Hook { builtin } => {
                rehook(family, name, &builtin, &desired.hooks)?;
                repaired.push(format!(
                    "{tool} {name} {builtin}: tabby's hook was not first"
                ));
            }
        }
    }
    if !chains.chains.is_empty() {
        run(
            family.restore(),
            &["--noflush", "--wait"],
            Some(&chains.restore_text(name, &[])),
        )?;
    }
    Ok(repaired)
}

fn repair_sets(
    family: Family,
    desired: &BTreeMap<String, BTreeSet<IpAddr>>,
) -> Result<Vec<String>, Error> {
    let kernel = parse_sets(&run("ipset", &["save"], None)?, family.set_prefix());
    let kind = family.ipset_family();
    let mut text = String::new();
    let mut repaired = Vec::new();
    for (name, members) in desired {
        let now = kernel.get(name);
        if now == Some(members) {
            continue;
        }
        let empty = BTreeSet::new();
        let now = now.unwrap_or(&empty);
        text.push_str(&format!("create {name} hash:ip family {kind}\n"));
        for ip in members.difference(now) {
            text.push_str(&format!("add {name} {ip}\n"));
        }
        for ip in now.difference(members) {
            text.push_str(&format!("del {name} {ip}\n"));
        }
        repaired.push(format!(
            "set {name}: {} member(s) instead of {}",
            now.len(),
            members.len()
        ));
    }
    if !text.is_empty() {
        run("ipset", &["-exist", "restore"], Some(&text))?;
    }
    Ok(repaired)
}

/// Makes the kernel hold one family's `applied` again where it drifted;
/// what was repaired, one line each. Sets first: the rules use them.
pub fn repair(
    family: Family,
    applied: &Applied,
    base: &mut Baseline,
) -> Result<Vec<String>, Error> {
    let mut repaired = repair_sets(family, &applied.sets)?;
    let (filter, nat) = (&applied.ruleset.filter, &applied.ruleset.nat);
    repaired.extend(repair_table(family, "filter", filter, base)?);
    repaired.extend(repair_table(family, "nat", nat, base)?);
    Ok(repaired)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = "# Generated\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n\
        :TABBY-FORWARD - [0:0]\n:TABBY-PI-A - [0:0]\n-A FORWARD -j TABBY-FORWARD\n\
        -A FORWARD -j DOCKER-USER\n-A TABBY-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
        -A TABBY-FORWARD -j ACCEPT\n-A TABBY-PI-A -m set --match-set tabby-t-A src -j RETURN\nCOMMIT\n";

    fn desired() -> Table {
        let mut t = Table::default();
        t.chain(
            "TABBY-FORWARD",
            vec![
                "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT".into(),
                "-j ACCEPT".into(),
            ],
        );
        t.chain(
            "TABBY-PI-A",
            vec!["-m set --match-set tabby-t-A src -j RETURN".into()],
        );
        t.hook("FORWARD", "TABBY-FORWARD");
        t
    }

    #[test]
    fn an_intact_table_has_no_drift_and_becomes_the_baseline() {
        let mut base = Baseline::default();
        let kernel = parse_save(SAVE);
        assert_eq!(kernel["TABBY-FORWARD"].len(), 2);
        assert!(find("filter", &desired(), &kernel, &mut base).is_empty());
        assert_eq!(base.0.len(), 2);
        // Canonical text differs from ours, but it is what was seen intact.
        assert!(find("filter", &desired(), &kernel, &mut base).is_empty());
    }

    #[test]
    fn flushed_edited_missing_chains_and_a_displaced_hook_are_found() {
        let mut base = Baseline::default();
        find("filter", &desired(), &parse_save(SAVE), &mut base);
        let mut kernel = parse_save(SAVE);
        kernel.get_mut("TABBY-FORWARD").unwrap().clear();
        kernel.remove("TABBY-PI-A");
        kernel.get_mut("FORWARD").unwrap().reverse();
        let found = find("filter", &desired(), &kernel, &mut base);
        assert_eq!(
            found,
            [
                Finding::Chain {
                    chain: "TABBY-FORWARD".into(),
                    reason: "0 rule(s) instead of 2".into()
                },
                Finding::Chain {
                    chain: "TABBY-PI-A".into(),
                    reason: "chain missing".into()
                },
                Finding::Hook {
                    builtin: "FORWARD".into()
                },
            ]
        );
        // A rule replaced by hand keeps the count but not the text.
        let mut base = Baseline::default();
        find("filter", &desired(), &parse_save(SAVE), &mut base);
        let mut kernel = parse_save(SAVE);
        kernel.get_mut("TABBY-PI-A").unwrap()[0] = "-j RETURN".into();
        let found = find("filter", &desired(), &kernel, &mut base);
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn sets_are_read_back_with_their_members() {
        let text = "create tabby-t-A hash:ip family inet hashsize 1024 maxelem 65536\n\
            add tabby-t-A 198.18.64.2\ncreate other hash:ip family inet\nadd other 198.18.0.1\n\
            create tabby-t-B hash:ip family inet\n";
        let sets = parse_sets(text, "tabby-t-");
        assert_eq!(sets.len(), 2, "{sets:?}");
        assert_eq!(sets["tabby-t-A"], ["198.18.64.2".parse().unwrap()].into());
        assert!(sets["tabby-t-B"].is_empty());
    }
}
