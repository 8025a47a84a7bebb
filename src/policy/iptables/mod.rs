//! iptables + ipset backend. Chains are replaced in one `iptables-restore
//! --noflush` batch, sets in one `ipset restore` batch (each set filled
//! aside and swapped in), hooks kept first in the built-in chains with the
//! iptables crate. What was applied last is remembered, so a pass that
//! changes nothing runs nothing.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tracing::{debug, info};

use super::firewall::{Error, Firewall, run};
use super::model::{Sets, Table};
use super::names::{SET_PREFIX, is_own_chain};
use super::render::PolicyState;
use text::{TextRuleset, lay_out};

pub mod drift;
mod family;
pub mod text;

/// What was applied last, in iptables' words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub ruleset: TextRuleset,
    pub sets: Sets,
}

#[derive(Default)]
pub struct IptablesFirewall {
    applied: Mutex<Option<Applied>>,
    /// The kernel's reading of chains seen intact, for drift checks.
    baseline: Mutex<drift::Baseline>,
}

/// tabby's chains that exist now in a table (not every `TABBY-` one).
fn existing_chains(table: &str) -> Result<Vec<String>, Error> {
    let out = run("iptables", &["-w", "-t", table, "-S"], None)?;
    Ok(out
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .filter(|c| is_own_chain(c))
        .map(str::to_string)
        .collect())
}

fn existing_sets() -> Result<Vec<String>, Error> {
    let out = run("ipset", &["list", "-n"], None)?;
    Ok(out
        .lines()
        .filter(|s| s.starts_with(SET_PREFIX))
        .map(str::to_string)
        .collect())
}

/// Writes the sets that differ from `before`: a known set gets only the
/// additions and removals; a new one is filled aside and swapped in.
fn apply_sets(sets: &Sets, before: Option<&Sets>) -> Result<(), Error> {
    let mut text = String::new();
    let tmp = "tabby-swap";
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
                    "create {name} hash:ip family inet\ncreate {tmp} hash:ip family inet\nflush {tmp}\n"
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
fn apply_chains(ruleset: &TextRuleset, before: Option<&TextRuleset>) -> Result<(), Error> {
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
            None => existing_chains(name)?,
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
        run("iptables-restore", &["--noflush", "--wait"], Some(&text))?;
    }
    Ok(())
}

/// A host with no iptables has no chains to coexist with.
pub fn present() -> bool {
    Command::new("iptables")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The crate's errors are not Send: they become strings here, on the
/// blocking thread.
pub(in crate::policy) fn ipt_error(err: Box<dyn std::error::Error>) -> Error {
    Error::Iptables(err.to_string())
}

pub(in crate::policy) fn ipt() -> Result<iptables::IPTables, Error> {
    iptables::new(false).map_err(ipt_error)
}

/// Deletes every copy of `rule` from `chain`.
pub(in crate::policy) fn delete_every(
    ipt: &iptables::IPTables,
    table: &str,
    chain: &str,
    rule: &str,
) -> Result<(), Error> {
    while ipt.exists(table, chain, rule).map_err(ipt_error)? {
        ipt.delete(table, chain, rule).map_err(ipt_error)?;
    }
    Ok(())
}

fn ensure_hooks(table: &str, hooks: &[(String, String)]) -> Result<(), Error> {
    let ipt = ipt()?;
    for (builtin, chain) in hooks {
        let rule = format!("-j {chain}");
        if !ipt.exists(table, builtin, &rule).map_err(ipt_error)? {
            ipt.insert(table, builtin, &rule, 1).map_err(ipt_error)?;
            info!(builtin, chain, "hooked chain");
        }
    }
    Ok(())
}

fn destroy_stale_sets(sets: &Sets) -> Result<(), Error> {
    for name in existing_sets()? {
        if !sets.contains_key(&name) {
            run("ipset", &["destroy", &name], None)?;
            debug!(set = %name, "destroyed stale set");
        }
    }
    Ok(())
}

/// Removes every chain, hook and set of this backend, tabby's by exact
/// name or shape only: what a switch to nftables leaves no trace of.
/// Returns what it removed.
pub fn remove_all() -> Result<Vec<String>, Error> {
    if !present() {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    for (table, builtins) in [
        ("filter", &["FORWARD", "INPUT"][..]),
        ("nat", &["PREROUTING", "OUTPUT", "POSTROUTING"][..]),
    ] {
        let chains = existing_chains(table)?;
        if chains.is_empty() {
            continue;
        }
        let ipt = ipt()?;
        for builtin in builtins {
            for chain in &chains {
                delete_every(&ipt, table, builtin, &format!("-j {chain}"))?;
            }
        }
        let text = text::TextTable::default().restore_text(table, &chains);
        run("iptables-restore", &["--noflush", "--wait"], Some(&text))?;
        removed.extend(chains);
    }
    let ipset = Command::new("ipset").arg("version").output();
    if ipset.is_ok_and(|o| o.status.success()) {
        for set in existing_sets()? {
            run("ipset", &["destroy", &set], None)?;
            removed.push(set);
        }
    }
    Ok(removed)
}

impl IptablesFirewall {
    fn apply_blocking(&self, state: &PolicyState) -> Result<(), Error> {
        let mut applied = self.applied.lock().expect("not poisoned");
        if applied.is_none() {
            // A switch from nftables leaves no table behind.
            super::nftables::remove_table()?;
        }
        let before = applied.as_ref();
        let ruleset = lay_out(&state.ruleset);
        apply_sets(&state.sets, before.map(|b| &b.sets))?;
        if before.map(|b| &b.ruleset) != Some(&ruleset) {
            apply_chains(&ruleset, before.map(|b| &b.ruleset))?;
            debug!(rules = ruleset.filter.rule_count(), "chains replaced");
        }
        let hooks_known = before.is_some_and(|b| {
            b.ruleset.filter.hooks == ruleset.filter.hooks
                && b.ruleset.nat.hooks == ruleset.nat.hooks
        });
        if !hooks_known {
            ensure_hooks("filter", &ruleset.filter.hooks)?;
            ensure_hooks("nat", &ruleset.nat.hooks)?;
        }
        if before.map(|b| b.sets.keys().collect::<Vec<_>>()) != Some(state.sets.keys().collect()) {
            destroy_stale_sets(&state.sets)?;
        }
        *applied = Some(Applied {
            ruleset,
            sets: state.sets.clone(),
        });
        Ok(())
    }
}

#[async_trait]
impl Firewall for IptablesFirewall {
    async fn apply(&self, state: Arc<PolicyState>) -> Result<(), Error> {
        // One pass at a time, off the async threads.
        let state = family::ipv4_only(&state);
        tokio::task::block_in_place(|| self.apply_blocking(&state))
    }

    async fn repair_drift(&self) -> Result<Vec<String>, Error> {
        tokio::task::block_in_place(|| {
            // Held throughout: no apply runs while the kernel is compared.
            let applied = self.applied.lock().expect("not poisoned");
            let mut baseline = self.baseline.lock().expect("not poisoned");
            match applied.as_ref() {
                Some(state) => drift::repair(state, &mut baseline),
                None => Ok(Vec::new()),
            }
        })
    }

    async fn apply_piece(&self, filter: &Table) -> Result<(), Error> {
        let filter = family::ipv4_table(filter);
        let text = text::filter_piece(&filter).restore_text("filter", &[]);
        tokio::task::block_in_place(|| {
            run("iptables-restore", &["--noflush", "--wait"], Some(&text)).map(drop)
        })
    }
}
