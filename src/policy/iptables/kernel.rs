//! Writing one family's share of the ruleset with its tools: sets through
//! `ipset restore`, chains through `iptables-restore --noflush` (or the
//! ip6 twins), hooks with the iptables crate; and removing all of it.

use std::collections::BTreeSet;
use std::process::Command;

use tracing::{debug, info};

use super::family::Family;
use super::text::{self, TextRuleset};
use super::{delete_every, ipt, ipt_error, present};
use crate::policy::firewall::{Error, run};
use crate::policy::model::Sets;
use crate::policy::names::is_own_chain;

/// tabby's chains that exist now in a table (not every `TABBY-` one).
fn existing_chains(family: Family, table: &str) -> Result<Vec<String>, Error> {
    let out = run(family.iptables(), &["-w", "-t", table, "-S"], None)?;
    Ok(out
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .filter(|c| is_own_chain(c))
        .map(str::to_string)
        .collect())
}

/// tabby's sets of one family (ipset's names are global; the prefix tells
/// the family).
fn existing_sets(family: Family) -> Result<Vec<String>, Error> {
    let out = run("ipset", &["list", "-n"], None)?;
    Ok(out
        .lines()
        .filter(|s| s.starts_with(family.set_prefix()))
        .map(str::to_string)
        .collect())
}

/// Writes the sets that differ from `before`: a known set gets only the
/// additions and removals; a new one is filled aside and swapped in.
pub fn apply_sets(family: Family, sets: &Sets, before: Option<&Sets>) -> Result<(), Error> {
    let mut text = String::new();
    let (tmp, kind) = (family.swap_set(), family.ipset_family());
    for (name, members) in sets {
        match before.and_then(|b| b.get(name)) {
            Some(old) if old == members => {}
            Some(old) => {
                for ip in members.difference(old) {
                    text.push_str(&format!("add {name} {ip}\n"));
                }
                for ip in old.difference(members) {
                    text.push_str(&format!("del {name} {ip}\n"));
                }
            }
            None => {
                text.push_str(&format!(
                    "create {name} hash:ip family {kind}\ncreate {tmp} hash:ip family {kind}\nflush {tmp}\n"
                ));
                for ip in members {
                    text.push_str(&format!("add {tmp} {ip}\n"));
                }
                text.push_str(&format!("swap {tmp} {name}\ndestroy {tmp}\n"));
            }
        }
    }
    if !text.is_empty() {
        run("ipset", &["-exist", "restore"], Some(&text))?;
        debug!("ipsets updated");
    }
    Ok(())
}

/// Both tables in one `iptables-restore` run (each table commits
/// atomically). Only chains that differ from `before` are rewritten, so
/// adding one endpoint among thousands rewrites a handful of chains.
pub fn apply_chains(
    family: Family,
    ruleset: &TextRuleset,
    before: Option<&TextRuleset>,
) -> Result<(), Error> {
    let mut text = String::new();
    let tables = [
        ("filter", &ruleset.filter, before.map(|b| &b.filter)),
        ("nat", &ruleset.nat, before.map(|b| &b.nat)),
    ];
    for (name, table, before) in tables {
        let changed = table.changed_since(before);
        let wanted: BTreeSet<&str> = table.chains.iter().map(|(n, _)| n.as_str()).collect();
        // Listing a big table is slow: after the first pass, what we made
        // and no longer want is known without asking.
        let present: Vec<String> = match before {
            Some(b) => b.chains.iter().map(|(n, _)| n.clone()).collect(),
            None => existing_chains(family, name)?,
        };
        let stale: Vec<String> = present
            .into_iter()
            .filter(|c| !wanted.contains(c.as_str()))
            .collect();
        if !stale.is_empty() {
            info!(table = name, chains = stale.len(), "removing stale chains");
        }
        if !changed.chains.is_empty() || !stale.is_empty() {
            text.push_str(&changed.restore_text(name, &stale));
        }
    }
    if !text.is_empty() {
        run(family.restore(), &["--noflush", "--wait"], Some(&text))?;
    }
    Ok(())
}

pub fn ensure_hooks(family: Family, table: &str, hooks: &[(String, String)]) -> Result<(), Error> {
    let ipt = ipt(family)?;
    for (builtin, chain) in hooks {
        let rule = format!("-j {chain}");
        if !ipt.exists(table, builtin, &rule).map_err(ipt_error)? {
            ipt.insert(table, builtin, &rule, 1).map_err(ipt_error)?;
            info!(tool = family.iptables(), builtin, chain, "hooked chain");
        }
    }
    Ok(())
}

pub fn destroy_stale_sets(family: Family, sets: &Sets) -> Result<(), Error> {
    for name in existing_sets(family)? {
        if !sets.contains_key(&name) {
            run("ipset", &["destroy", &name], None)?;
            debug!(set = %name, "destroyed stale set");
        }
    }
    Ok(())
}

/// Removes every chain, hook and set of this backend in both families,
/// tabby's by exact name or shape only: what a switch to nftables leaves
/// no trace of. Returns what it removed.
pub fn remove_all() -> Result<Vec<String>, Error> {
    if !present() {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    for &family in Family::working() {
        removed.extend(remove_chains(family)?);
    }
    let ipset = Command::new("ipset").arg("version").output();
    if ipset.is_ok_and(|o| o.status.success()) {
        for family in [Family::V4, Family::V6] {
            for set in existing_sets(family)? {
                run("ipset", &["destroy", &set], None)?;
                removed.push(set);
            }
        }
    }
    Ok(removed)
}

/// Unhooks and deletes one family's chains.
fn remove_chains(family: Family) -> Result<Vec<String>, Error> {
    let mut removed = Vec::new();
    for (table, builtins) in [
        ("filter", &["FORWARD", "INPUT"][..]),
        ("nat", &["PREROUTING", "OUTPUT", "POSTROUTING"][..]),
    ] {
        let chains = existing_chains(family, table)?;
        if chains.is_empty() {
            continue;
        }
        let ipt = ipt(family)?;
        for builtin in builtins {
            for chain in &chains {
                delete_every(&ipt, table, builtin, &format!("-j {chain}"))?;
            }
        }
        let text = text::TextTable::default().restore_text(table, &chains);
        run(family.restore(), &["--noflush", "--wait"], Some(&text))?;
        removed.extend(chains);
    }
    Ok(removed)
}
