//! The one rule the nftables backend keeps in iptables (and ip6tables). A packet must be
//! accepted by every base chain of its hook, and dockerd's iptables-nft
//! `FORWARD` has policy DROP: tabby's table marks what it accepts, and
//! this rule, first in `FORWARD`, lets marked packets through. It is
//! static: never rewritten on the hot path, only re-checked by the
//! periodic drift check (a dockerd restart rewrites `FORWARD`).

use tracing::info;

use crate::policy::firewall::Error;
use crate::policy::iptables::{self, Family};
use crate::policy::model::ACCEPT_BIT;

fn rule() -> String {
    format!("-m mark --mark {ACCEPT_BIT:#x}/{ACCEPT_BIT:#x} -j ACCEPT")
}

/// Makes the rule `FORWARD`'s first in each working family (a host's
/// ip6tables may drop forwarded IPv6 by policy just as dockerd's iptables
/// does); whether it had to be put there anywhere.
pub fn ensure() -> Result<bool, Error> {
    if !iptables::present() {
        return Ok(false);
    }
    let mut moved = false;
    for &family in Family::working() {
        moved |= ensure_in(family)?;
    }
    Ok(moved)
}

fn ensure_in(family: Family) -> Result<bool, Error> {
    let ipt = iptables::ipt(family)?;
    let rule = rule();
    let listed = ipt.list("filter", "FORWARD").map_err(iptables::ipt_error)?;
    let first = listed.iter().find(|r| r.starts_with("-A "));
    if first.map(String::as_str) == Some(format!("-A FORWARD {rule}").as_str()) {
        return Ok(false);
    }
    iptables::delete_every(&ipt, "filter", "FORWARD", &rule)?;
    ipt.insert("filter", "FORWARD", &rule, 1)
        .map_err(iptables::ipt_error)?;
    info!(
        tool = family.iptables(),
        "FORWARD accepts what tabby's nftables table accepted"
    );
    Ok(true)
}

/// Removes the rule (a switch back to the iptables backend).
pub fn remove() -> Result<(), Error> {
    if !iptables::present() {
        return Ok(());
    }
    for &family in Family::working() {
        iptables::delete_every(&iptables::ipt(family)?, "filter", "FORWARD", &rule())?;
    }
    Ok(())
}
