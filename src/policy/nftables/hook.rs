//! The one rule the nftables backend keeps in iptables. A packet must be
//! accepted by every base chain of its hook, and dockerd's iptables-nft
//! `FORWARD` has policy DROP: tabby's table marks what it accepts, and
//! this rule, first in `FORWARD`, lets marked packets through. It is
//! static: never rewritten on the hot path, only re-checked by the
//! periodic drift check (a dockerd restart rewrites `FORWARD`).

use tracing::info;

use crate::policy::firewall::Error;
use crate::policy::iptables;
use crate::policy::model::ACCEPT_BIT;

fn rule() -> String {
    format!("-m mark --mark {ACCEPT_BIT:#x}/{ACCEPT_BIT:#x} -j ACCEPT")
}

/// Makes the rule `FORWARD`'s first; whether it had to be put there.
pub fn ensure() -> Result<bool, Error> {
    if !iptables::present() {
        return Ok(false);
    }
    let ipt = iptables::ipt()?;
    let rule = rule();
    let listed = ipt.list("filter", "FORWARD").map_err(iptables::ipt_error)?;
    let first = listed.iter().find(|r| r.starts_with("-A "));
    if first.map(String::as_str) == Some(format!("-A FORWARD {rule}").as_str()) {
        return Ok(false);
    }
    iptables::delete_every(&ipt, "filter", "FORWARD", &rule)?;
    ipt.insert("filter", "FORWARD", &rule, 1)
        .map_err(iptables::ipt_error)?;
    info!("iptables FORWARD accepts what tabby's nftables table accepted");
    Ok(true)
}

/// Removes the rule (a switch back to the iptables backend).
pub fn remove() -> Result<(), Error> {
    if !iptables::present() {
        return Ok(());
    }
    iptables::delete_every(&iptables::ipt()?, "filter", "FORWARD", &rule())
}
