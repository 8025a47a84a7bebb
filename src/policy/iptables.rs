//! iptables backend: chains replaced in one `iptables-restore --noflush`
//! batch, hooks kept first in the built-in chains with the iptables crate.

use std::io::Write;
use std::process::{Command, Stdio};

use async_trait::async_trait;
use tracing::info;

use super::firewall::{Error, Firewall, Ruleset};

pub struct IptablesFirewall;

fn restore(text: &str) -> Result<(), Error> {
    let command = "iptables-restore --noflush".to_string();
    let mut child = Command::new("iptables-restore")
        .args(["--noflush", "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    let output = child.wait_with_output().map_err(|source| Error::Spawn {
        command: command.clone(),
        source,
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Failed {
            command,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

fn ensure_hooks(hooks: &[(String, String)]) -> Result<(), Error> {
    // The crate's errors are not Send: turn them into strings here, on the
    // blocking thread.
    let ipt = iptables::new(false).map_err(|e| Error::Iptables(e.to_string()))?;
    for (builtin, chain) in hooks {
        let rule = format!("-j {chain}");
        let present = ipt
            .exists("filter", builtin, &rule)
            .map_err(|e| Error::Iptables(e.to_string()))?;
        if !present {
            ipt.insert("filter", builtin, &rule, 1)
                .map_err(|e| Error::Iptables(e.to_string()))?;
            info!(builtin, chain, "hooked chain");
        }
    }
    Ok(())
}

#[async_trait]
impl Firewall for IptablesFirewall {
    async fn apply(&self, ruleset: &Ruleset) -> Result<(), Error> {
        let ruleset = ruleset.clone();
        tokio::task::spawn_blocking(move || {
            restore(&ruleset.restore_text())?;
            ensure_hooks(&ruleset.hooks)
        })
        .await
        .map_err(|e| Error::Iptables(format!("firewall task failed: {e}")))?
    }
}
