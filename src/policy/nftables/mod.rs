//! nftables backend: one table, `inet tabby`, changed in place. Each pass
//! is one `nft -j -f -` transaction holding only what changed since the
//! last (the whole table on the first pass, or when a check finds the
//! kernel's copy drifted). One static rule in iptables' `FORWARD` lets
//! through what this table accepted (see `hook`).

mod batch;
mod dnat;
mod family;
pub mod hook;
mod netlink;
mod ops;
mod translate;
mod verify;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use super::firewall::{Error, Firewall};
use super::model::{Match, Table};
use super::render::PolicyState;

pub use translate::TABLE;

pub struct NftablesFirewall {
    applied: Mutex<Option<Arc<PolicyState>>>,
    /// A change that only takes away, being committed in the background
    /// (see `apply_blocking`); every other call waits for it first.
    removing: Mutex<Option<std::thread::JoinHandle<bool>>>,
    writer: Writer,
}

/// What commits transactions: shared with the background removal.
#[derive(Clone)]
struct Writer {
    /// Changes go to the kernel over netlink where they can; off, every
    /// change goes through `nft` (`TABBY_NFT_NETLINK=off`, an escape hatch
    /// should a kernel read tabby's netlink differently from nft's).
    netlink: bool,
    /// Transactions applied over netlink rather than nft.
    over_netlink: Arc<AtomicU64>,
}

impl Default for NftablesFirewall {
    fn default() -> Self {
        let off = std::env::var("TABBY_NFT_NETLINK").is_ok_and(|v| v == "off");
        NftablesFirewall {
            applied: Mutex::default(),
            removing: Mutex::default(),
            writer: Writer {
                netlink: !off,
                over_netlink: Arc::default(),
            },
        }
    }
}

/// Runs one transaction; nft's own message is the error.
fn run(cmds: Vec<Value>) -> Result<(), Error> {
    if cmds.is_empty() {
        return Ok(());
    }
    let payload = json!({ "nftables": cmds }).to_string();
    super::firewall::run("nft", &["-j", "-f", "-"], Some(&payload)).map(drop)
}

/// `nft -j list table inet tabby`, or None when there is no such table.
fn listing() -> Result<Option<Value>, Error> {
    match super::firewall::run("nft", &["-j", "list", "table", "inet", TABLE], None) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Nftables(format!("cannot read the table back: {e}"))),
        Err(Error::Failed { stderr, .. }) if stderr.contains("No such file or directory") => {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Whether this host can run the backend: an `nft` that speaks JSON and a
/// kernel with nf_tables.
pub fn available() -> bool {
    super::firewall::run("nft", &["-j", "list", "tables"], None).is_ok()
}

/// Removes the table if it is tabby's (it holds tabby's FORWARD chain):
/// what a switch to the iptables backend leaves no trace of.
pub fn remove_table() -> Result<bool, Error> {
    if !available() {
        return Ok(false);
    }
    let Some(table) = listing()? else {
        return Ok(false);
    };
    let view = verify::kernel(&table);
    if !view.chains.contains_key(super::names::FORWARD) {
        warn!("an inet {TABLE} table that tabby did not make is left alone");
        return Ok(false);
    }
    run(batch::drop_table())?;
    hook::remove()?;
    info!("removed the nftables table of the other backend");
    Ok(true)
}

/// Tag sets a few chains' rules name.
fn sets_named(filter: &Table) -> BTreeSet<String> {
    filter
        .chains
        .iter()
        .flat_map(|(_, rules)| rules.iter().flat_map(|r| &r.matches))
        .filter_map(|m| match m {
            Match::SrcSet(s) | Match::DstSet(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

impl Writer {
    /// One change: straight to the kernel over netlink where every
    /// operation is one the encoder knows (no `nft` process, no cache of
    /// the whole table), else through nft. A refusal over netlink is tried
    /// again through nft: if nft succeeds, tabby's encoding was wrong.
    fn commit(&self, ops: &[ops::Op]) -> Result<(), Error> {
        if !self.netlink {
            return run(batch::json(ops));
        }
        match netlink::commit(ops) {
            Ok(true) => {
                self.over_netlink.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(false) => run(batch::json(ops)),
            Err(refused) => {
                run(batch::json(ops))?;
                warn!(error = %refused, "nft applied a change the kernel refused over netlink");
                Ok(())
            }
        }
    }

    /// The whole table in one transaction, replacing what is there.
    fn load(&self, state: &PolicyState) -> Result<(), Error> {
        self.commit(&batch::full(state))
    }

    /// A change; if the kernel refuses it, its copy may have drifted from
    /// what we think it holds: the table is replaced whole, once.
    fn change(&self, ops: &[ops::Op], state: &PolicyState) -> Result<(), Error> {
        debug!(operations = ops.len(), "nftables change");
        if let Err(err) = self.commit(ops) {
            debug!(error = %err, "incremental change refused; replacing the table");
            self.load(state)?;
        }
        Ok(())
    }
}

impl NftablesFirewall {
    /// Every change through `nft`, never netlink.
    pub fn nft_only() -> Self {
        let mut fw = Self::default();
        fw.writer.netlink = false;
        fw
    }

    /// How many transactions went over netlink rather than nft.
    pub fn netlink_transactions(&self) -> u64 {
        self.wait_for_removal();
        self.writer.over_netlink.load(Ordering::Relaxed)
    }

    /// Waits for a background removal; false if it failed (the kernel may
    /// then hold anything between the two states).
    fn wait_for_removal(&self) -> bool {
        let pending = self.removing.lock().expect("not poisoned").take();
        pending.is_none_or(|handle| handle.join().unwrap_or(false))
    }

    fn apply_blocking(&self, state: Arc<PolicyState>) -> Result<(), Error> {
        let mut applied = self.applied.lock().expect("not poisoned");
        let removal_failed = !self.wait_for_removal();
        let Some(before) = applied.as_ref() else {
            // A switch from iptables leaves none of its chains or sets.
            let removed = super::iptables::remove_all()?;
            if !removed.is_empty() {
                info!(
                    objects = removed.len(),
                    "removed the iptables backend's chains and sets"
                );
            }
            self.writer.load(&state)?;
            hook::ensure()?;
            *applied = Some(state);
            return Ok(());
        };
        // After a failed removal the kernel may hold anything between two
        // states: no diff against either is safe.
        let changes = if removal_failed {
            None
        } else {
            ops::changes(before, &state)
        };
        match changes {
            Some(ops) if ops.is_empty() => return Ok(()),
            // A change that only takes away (an endpoint, a member, an
            // exposure going) need not hold up its caller: the kernel's
            // commit of a deletion waits out an RCU grace period (10-15 ms
            // here, whatever the table's size). Every later call waits for
            // it before it changes anything, so changes stay in order.
            Some(ops) if ops.iter().all(ops::Op::only_removes) => {
                let (writer, target) = (self.writer.clone(), state.clone());
                let handle = std::thread::spawn(move || match writer.change(&ops, &target) {
                    Ok(()) => true,
                    Err(err) => {
                        warn!(error = %err, "nftables removal failed; the next change reloads the table");
                        false
                    }
                });
                *self.removing.lock().expect("not poisoned") = Some(handle);
            }
            Some(ops) => self.writer.change(&ops, &state)?,
            None => self.writer.load(&state)?,
        }
        *applied = Some(state);
        Ok(())
    }

    fn repair_blocking(&self) -> Result<Vec<String>, Error> {
        let applied = self.applied.lock().expect("not poisoned");
        let removed = self.wait_for_removal();
        let Some(state) = applied.as_ref() else {
            return Ok(Vec::new());
        };
        let want = verify::desired(state);
        let mut repaired = match listing()? {
            None => vec![format!("table inet {TABLE} missing")],
            Some(table) => verify::differences(&want, &verify::kernel(&table)),
        };
        if !repaired.is_empty() || !removed {
            self.writer.load(state)?;
        }
        if hook::ensure()? {
            repaired.push("iptables FORWARD: tabby's accept was not first".into());
        }
        Ok(repaired)
    }
}

#[async_trait]
impl Firewall for NftablesFirewall {
    fn polices_ipv6(&self) -> bool {
        // The inet table sees both families (see `render`).
        true
    }

    async fn apply(&self, state: Arc<PolicyState>) -> Result<(), Error> {
        tokio::task::block_in_place(|| self.apply_blocking(state))
    }

    async fn repair_drift(&self) -> Result<Vec<String>, Error> {
        tokio::task::block_in_place(|| self.repair_blocking())
    }

    async fn apply_piece(&self, filter: &Table) -> Result<(), Error> {
        let cmds = batch::piece(filter, &sets_named(filter));
        tokio::task::block_in_place(|| run(cmds))
    }
}
