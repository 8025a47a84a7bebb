//! One bad profile stays one bad profile. A profile whose record cannot be
//! used, or whose rules the kernel refuses, is replaced by a drop-only
//! version, and the endpoints that carry it fail closed; every other
//! profile's rules still apply.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::warn;

use super::firewall::{Error, Firewall};
use super::model::{Programmed, Table};
use super::names::profile_chain;
use super::render::{PolicyInput, PolicyState, render};
use crate::model::{Action, Endpoint, Profile, Rule, RuleMatch};

/// Profile name -> why it is not applied.
pub type Failures = BTreeMap<String, String>;

fn drop_all() -> Rule {
    Rule {
        action: Action::Deny,
        protocol: None,
        from: RuleMatch::default(),
        to: RuleMatch::default(),
    }
}

/// The stand-in for a failed profile: it drops everything, carries no tag.
fn quarantined(name: &str) -> Profile {
    Profile {
        name: name.to_string(),
        tags: Default::default(),
        inbound: vec![drop_all()],
        outbound: vec![drop_all()],
    }
}

/// An endpoint with a failed profile keeps only that one: an allow of one
/// of its other profiles must not let through what the failed one would
/// have stopped.
fn contain_endpoint(ep: &Endpoint, failed: &Failures) -> Endpoint {
    let mut ep = ep.clone();
    if let Some(bad) = ep.profiles.iter().find(|p| failed.contains_key(*p)) {
        ep.profiles = vec![bad.clone()];
    }
    ep
}

/// Renders `input` with the `failed` profiles quarantined.
pub fn render_contained(input: &PolicyInput, failed: &Failures) -> PolicyState {
    let mut profiles: Vec<Profile> = input
        .profiles
        .iter()
        .filter(|p| !failed.contains_key(&p.name))
        .cloned()
        .collect();
    profiles.extend(failed.keys().map(|name| quarantined(name)));
    let local: Vec<Endpoint> = input
        .local
        .iter()
        .map(|e| contain_endpoint(e, failed))
        .collect();
    let all: Vec<Endpoint> = input
        .all
        .iter()
        .map(|e| contain_endpoint(e, failed))
        .collect();
    render(&PolicyInput {
        local: &local,
        all: &all,
        profiles: &profiles,
        exposures: input.exposures,
        quarantined: input.quarantined,
        vxlan_peers: input.vxlan_peers,
    })
}

/// A profile's own chains out of a rendered state.
fn profile_piece(state: &PolicyState, name: &str) -> Table {
    let wanted = [profile_chain("I", name), profile_chain("O", name)];
    Table {
        chains: state
            .ruleset
            .filter
            .chains
            .iter()
            .filter(|(n, _)| wanted.contains(n))
            .cloned()
            .collect(),
        hooks: Vec::new(),
        maps: Vec::new(),
    }
}

/// The kernel's own words, without the command line around them.
fn kernel_message(err: &Error) -> String {
    match err {
        Error::Failed { stderr, .. } => stderr.lines().next().unwrap_or(stderr).to_string(),
        other => other.to_string(),
    }
}

/// Applies the policy; `invalid` profiles (unusable records) fail closed
/// from the start. When the kernel refuses the batch, each profile is tried
/// on its own, the refused ones are quarantined and the rest applied.
/// Returns every profile that is not applied, and why, and what the
/// applied policy holds.
pub async fn apply_contained(
    firewall: &dyn Firewall,
    input: &PolicyInput<'_>,
    invalid: &Failures,
) -> Result<(Failures, Programmed), Error> {
    let mut failed = invalid.clone();
    let state = Arc::new(render_contained(input, &failed));
    let Err(batch_err) = firewall.apply(state.clone()).await else {
        return Ok((failed, Programmed::of(&state.ruleset, &state.sets)));
    };
    let mut found = false;
    for profile in input.profiles {
        if failed.contains_key(&profile.name) {
            continue;
        }
        if let Err(err) = firewall
            .apply_piece(&profile_piece(&state, &profile.name))
            .await
        {
            let reason = kernel_message(&err);
            warn!(profile = %profile.name, %reason, "kernel refused the profile's rules; its endpoints drop everything");
            failed.insert(profile.name.clone(), format!("kernel refused: {reason}"));
            found = true;
        }
    }
    if !found {
        return Err(batch_err);
    }
    let state = Arc::new(render_contained(input, &failed));
    firewall.apply(state.clone()).await?;
    Ok((failed, Programmed::of(&state.ruleset, &state.sets)))
}

#[cfg(test)]
mod tests;
