//! iptables + ipset backend, run once per family: `iptables` and
//! `ip6tables` each get their family's share of the ruleset (`family`).
//! Chains are replaced in one `iptables-restore --noflush` batch, sets in
//! one `ipset restore` batch (each set filled aside and swapped in), hooks
//! kept first in the built-in chains with the iptables crate. What was
//! applied last is remembered, so a pass that changes nothing runs nothing.

use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tracing::{debug, info};

use super::firewall::{Error, Firewall, run};
use super::model::{Sets, Table};
use super::render::PolicyState;
use family::{family_state, family_table};
use kernel::{apply_chains, apply_sets, destroy_stale_sets, ensure_hooks};
use text::{TextRuleset, lay_out};

pub mod drift;
mod family;
mod kernel;
pub mod text;

pub(in crate::policy) use family::Family;
pub use kernel::remove_all;

/// What was applied last, in iptables' words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub ruleset: TextRuleset,
    pub sets: Sets,
}

/// One family's tools and what they were last given.
struct FamilyFirewall {
    family: Family,
    applied: Option<Applied>,
    /// The kernel's reading of chains seen intact, for drift checks.
    baseline: drift::Baseline,
}

pub struct IptablesFirewall {
    /// One per working family (`Family::working`).
    families: Mutex<Vec<FamilyFirewall>>,
}

impl Default for IptablesFirewall {
    fn default() -> Self {
        if !Family::working().contains(&Family::V6) {
            info!("ip6tables does not work here: IPv6 networks will be refused");
        }
        let families = Family::working()
            .iter()
            .map(|&family| FamilyFirewall {
                family,
                applied: None,
                baseline: drift::Baseline::default(),
            })
            .collect();
        IptablesFirewall {
            families: Mutex::new(families),
        }
    }
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

pub(in crate::policy) fn ipt(family: Family) -> Result<iptables::IPTables, Error> {
    iptables::new(family.is_v6()).map_err(ipt_error)
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

impl FamilyFirewall {
    /// Makes this family's chains and sets exactly `state` (already cut
    /// to the family).
    fn apply(&mut self, state: &PolicyState) -> Result<(), Error> {
        let family = self.family;
        let before = self.applied.as_ref();
        let ruleset = lay_out(&state.ruleset);
        apply_sets(family, &state.sets, before.map(|b| &b.sets))?;
        if before.map(|b| &b.ruleset) != Some(&ruleset) {
            apply_chains(family, &ruleset, before.map(|b| &b.ruleset))?;
            let rules = ruleset.filter.rule_count();
            debug!(tool = family.iptables(), rules, "chains replaced");
        }
        let hooks_known = before.is_some_and(|b| {
            b.ruleset.filter.hooks == ruleset.filter.hooks
                && b.ruleset.nat.hooks == ruleset.nat.hooks
        });
        if !hooks_known {
            ensure_hooks(family, "filter", &ruleset.filter.hooks)?;
            ensure_hooks(family, "nat", &ruleset.nat.hooks)?;
        }
        if before.map(|b| b.sets.keys().collect::<Vec<_>>()) != Some(state.sets.keys().collect()) {
            destroy_stale_sets(family, &state.sets)?;
        }
        self.applied = Some(Applied {
            ruleset,
            sets: state.sets.clone(),
        });
        Ok(())
    }
}

impl IptablesFirewall {
    fn apply_blocking(&self, state: &PolicyState) -> Result<(), Error> {
        let mut families = self.families.lock().expect("not poisoned");
        if families.iter().all(|f| f.applied.is_none()) {
            // A switch from nftables leaves no table behind.
            super::nftables::remove_table()?;
        }
        for family in families.iter_mut() {
            family.apply(&family_state(state, family.family))?;
        }
        Ok(())
    }

    fn repair_blocking(&self) -> Result<Vec<String>, Error> {
        // Held throughout: no apply runs while the kernel is compared.
        let mut families = self.families.lock().expect("not poisoned");
        let mut repaired = Vec::new();
        for family in families.iter_mut() {
            if let Some(applied) = &family.applied {
                let found = drift::repair(family.family, applied, &mut family.baseline)?;
                repaired.extend(found);
            }
        }
        Ok(repaired)
    }
}

#[async_trait]
impl Firewall for IptablesFirewall {
    async fn apply(&self, state: Arc<PolicyState>) -> Result<(), Error> {
        // One pass at a time, off the async threads.
        tokio::task::block_in_place(|| self.apply_blocking(&state))
    }

    async fn repair_drift(&self) -> Result<Vec<String>, Error> {
        tokio::task::block_in_place(|| self.repair_blocking())
    }

    fn polices_ipv6(&self) -> bool {
        Family::working().contains(&Family::V6)
    }

    async fn apply_piece(&self, filter: &Table) -> Result<(), Error> {
        tokio::task::block_in_place(|| {
            for &family in Family::working() {
                let table = family_table(filter, family);
                let text = text::filter_piece(&table).restore_text("filter", &[]);
                run(family.restore(), &["--noflush", "--wait"], Some(&text))?;
            }
            Ok(())
        })
    }
}
