//! The firewall contract, in the manner of netavark: a trait that each
//! backend (iptables, nftables) implements over the typed ruleset, and a
//! do-nothing backend for tests of the logic above it.

use async_trait::async_trait;

use super::model::Table;
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
    #[error("nftables: {0}")]
    Nftables(String),
}

#[async_trait]
pub trait Firewall: Send + Sync {
    /// Makes tabby's sets and chains exactly `state` (sets before the rules
    /// that use them, stale sets after), and ensures the hooks.
    async fn apply(&self, state: &PolicyState) -> Result<(), Error>;

    /// Reads the kernel back and rewrites what drifted from the last
    /// `apply`; what was repaired, one line each.
    async fn repair_drift(&self) -> Result<Vec<String>, Error> {
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
