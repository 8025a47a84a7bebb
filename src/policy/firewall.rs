//! The firewall contract, in the manner of netavark: a trait that a
//! backend (iptables now, nftables later) implements, and a do-nothing
//! backend for tests of the logic above it.

use async_trait::async_trait;

use super::render::PolicyState;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("iptables: {0}")]
    Iptables(String),
}

/// Chains owned by tabby in one table, and the jumps into them from
/// built-in chains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Chain name and its rules, in order, as iptables rule specs.
    pub chains: Vec<(String, Vec<String>)>,
    /// (built-in chain, tabby chain) jumps, each placed first.
    pub hooks: Vec<(String, String)>,
}

impl Table {
    pub fn chain(&mut self, name: &str, rules: Vec<String>) {
        self.chains.push((name.to_string(), rules));
    }

    pub fn hook(&mut self, builtin: &str, chain: &str) {
        self.hooks.push((builtin.to_string(), chain.to_string()));
    }

    /// The chains that differ from `before` (all of them without one).
    pub fn changed_since(&self, before: Option<&Table>) -> Table {
        let chains = self
            .chains
            .iter()
            .filter(|(name, rules)| {
                before.is_none_or(|b| !b.chains.iter().any(|(n, r)| n == name && r == rules))
            })
            .cloned()
            .collect();
        Table {
            chains,
            hooks: self.hooks.clone(),
        }
    }

    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|(_, r)| r.len()).sum()
    }

    /// This table's part of an `iptables-restore --noflush` batch:
    /// declaring a chain flushes it, so every chain is replaced whole in one
    /// atomic commit; chains in `stale` are emptied and deleted in it too.
    pub fn restore_text(&self, table: &str, stale: &[String]) -> String {
        let mut out = format!("*{table}\n");
        for name in self.chains.iter().map(|(n, _)| n).chain(stale) {
            out.push_str(&format!(":{name} - [0:0]\n"));
        }
        for (name, rules) in &self.chains {
            for rule in rules {
                out.push_str(&format!("-A {name} {rule}\n"));
            }
        }
        for name in stale {
            out.push_str(&format!("-X {name}\n"));
        }
        out.push_str("COMMIT\n");
        out
    }
}

/// Everything tabby programs with iptables on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub filter: Table,
    pub nat: Table,
}

#[async_trait]
pub trait Firewall: Send + Sync {
    /// Makes tabby's sets and chains exactly `state` (sets before the rules
    /// that use them, stale sets after), and ensures the hooks.
    async fn apply(&self, state: &PolicyState) -> Result<(), Error>;

    /// Reads the kernel back and rewrites what drifted from the last
    /// `apply` (see `drift`); what was repaired, one line each.
    async fn repair_drift(
        &self,
        _baseline: &mut super::drift::Baseline,
    ) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    /// Commits a few filter chains on their own (each already meant to be
    /// so), to learn which piece of a refused batch the kernel refuses.
    async fn apply_piece(&self, _filter: &Table) -> Result<(), Error> {
        Ok(())
    }
}

/// Accepts everything and does nothing: for tests that have no kernel.
pub struct NoopFirewall;

#[async_trait]
impl Firewall for NoopFirewall {
    async fn apply(&self, _state: &PolicyState) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn restore_text_declares_chains_before_rules_and_deletes_stale_ones() {
        let mut table = super::Table::default();
        table.chain("TABBY-A", vec!["-j ACCEPT".into()]);
        let text = table.restore_text("filter", &["TABBY-OLD".into()]);
        assert_eq!(
            text,
            "*filter\n:TABBY-A - [0:0]\n:TABBY-OLD - [0:0]\n-A TABBY-A -j ACCEPT\n-X TABBY-OLD\nCOMMIT\n"
        );
    }
}
