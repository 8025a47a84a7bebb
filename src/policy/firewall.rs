//! The firewall contract, in the manner of netavark: a trait that each
//! backend (iptables, nftables) implements over the typed ruleset, and a
//! do-nothing backend for tests of the logic above it.

use std::io::Write;
use std::process::{Command, Stdio};

use std::sync::Arc;

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

/// Runs a firewall tool (iptables, ipset, nft), feeding it `input`; its
/// stdout, or its stderr as the error.
pub(super) fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String, Error> {
    let command = format!("{program} {}", args.join(" "));
    let spawn_err = |source| Error::Spawn {
        command: command.clone(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).map_err(spawn_err)?;
    }
    drop(stdin);
    let output = child.wait_with_output().map_err(spawn_err)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Failed {
            command,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

#[async_trait]
pub trait Firewall: Send + Sync {
    /// Makes tabby's sets and chains exactly `state` (sets before the rules
    /// that use them, stale sets after), and ensures the hooks.
    /// The state is shared, not copied: a backend keeps it as "what was
    /// applied" for the next change, and at 10,000 endpoints a copy costs
    /// more than the change.
    async fn apply(&self, state: Arc<PolicyState>) -> Result<(), Error>;

    /// Reads the kernel back and rewrites what drifted from the last
    /// `apply`; what was repaired, one line each.
    async fn repair_drift(&self) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    /// Whether this backend polices IPv6 as it does IPv4 (dual-stack
    /// networks are refused otherwise: their IPv6 would go unpoliced).
    fn polices_ipv6(&self) -> bool {
        false
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
    async fn apply(&self, _state: Arc<PolicyState>) -> Result<(), Error> {
        Ok(())
    }
}
