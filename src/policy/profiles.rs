//! Profile edits in the datastore, each a compare-and-swap so concurrent
//! edits never lose one another. Every agent sees the change through its
//! watch and reprograms its firewall.

use crate::model::{Profile, Rule};
use crate::store::{self, Expect, Store};

use super::rules::{RuleError, default_profile, validate};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("{0}")]
    Name(String),
    #[error("profile {0} already exists")]
    Exists(String),
    #[error("no profile {0}")]
    Missing(String),
    #[error("profile {name} is used by {count} endpoint(s)")]
    InUse { name: String, count: usize },
    #[error("no {direction} rule {index}: the profile has {len}")]
    NoRule {
        direction: &'static str,
        index: usize,
        len: usize,
    },
    #[error("the profile changed meanwhile too often; try again")]
    Contention,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    fn rules(self, profile: &mut Profile) -> &mut Vec<Rule> {
        match self {
            Direction::Inbound => &mut profile.inbound,
            Direction::Outbound => &mut profile.outbound,
        }
    }
}

pub async fn add(store: &Store, name: &str) -> Result<Profile, Error> {
    crate::validate::profile_name("profile name", name).map_err(|e| Error::Name(e.to_string()))?;
    let profile = default_profile(name);
    if !store.swap_profile(&profile, Expect::Absent).await? {
        return Err(Error::Exists(name.to_string()));
    }
    Ok(profile)
}

pub async fn remove(store: &Store, name: &str) -> Result<(), Error> {
    let count = store
        .endpoints()
        .await?
        .iter()
        .filter(|e| e.profiles.iter().any(|p| p == name))
        .count();
    if count > 0 {
        return Err(Error::InUse {
            name: name.to_string(),
            count,
        });
    }
    if !store.delete_profile(name).await? {
        return Err(Error::Missing(name.to_string()));
    }
    Ok(())
}

/// Applies `change` to a profile atomically; `change` may refuse, and then
/// nothing is written.
pub async fn update(
    store: &Store,
    name: &str,
    change: impl Fn(&mut Profile) -> Result<(), Error>,
) -> Result<Profile, Error> {
    for _ in 0..16 {
        let current = store
            .profile(name)
            .await?
            .ok_or_else(|| Error::Missing(name.to_string()))?;
        let mut profile = current.value;
        change(&mut profile)?;
        for rule in profile.inbound.iter().chain(&profile.outbound) {
            validate(rule)?;
        }
        if store
            .swap_profile(&profile, Expect::Revision(current.revision))
            .await?
        {
            return Ok(profile);
        }
    }
    Err(Error::Contention)
}

pub async fn add_rule(
    store: &Store,
    name: &str,
    direction: Direction,
    at: Option<usize>,
    rule: Rule,
) -> Result<Profile, Error> {
    update(store, name, |p| {
        let rules = direction.rules(p);
        let index = match at {
            None => rules.len(),
            Some(n) if (1..=rules.len() + 1).contains(&n) => n - 1,
            Some(n) => {
                return Err(Error::NoRule {
                    direction: direction.name(),
                    index: n,
                    len: rules.len(),
                });
            }
        };
        rules.insert(index, rule.clone());
        Ok(())
    })
    .await
}

pub async fn remove_rule(
    store: &Store,
    name: &str,
    direction: Direction,
    index: usize,
) -> Result<Profile, Error> {
    update(store, name, |p| {
        let rules = direction.rules(p);
        if index == 0 || index > rules.len() {
            return Err(Error::NoRule {
                direction: direction.name(),
                index,
                len: rules.len(),
            });
        }
        rules.remove(index - 1);
        Ok(())
    })
    .await
}

pub async fn set_tag(
    store: &Store,
    name: &str,
    tag: &str,
    present: bool,
) -> Result<Profile, Error> {
    crate::validate::profile_name("tag", tag).map_err(|e| Error::Name(e.to_string()))?;
    update(store, name, |p| {
        if present {
            p.tags.insert(tag.to_string());
        } else {
            p.tags.remove(tag);
        }
        Ok(())
    })
    .await
}

/// Changes one container's profiles (found by container name or endpoint
/// ID on any host). Profiles must exist.
pub async fn set_container_profiles(
    store: &Store,
    container: &str,
    change: impl Fn(&mut Vec<String>),
) -> Result<Vec<String>, Error> {
    let known: Vec<String> = store
        .profiles()
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    for _ in 0..16 {
        let endpoint = store
            .endpoints()
            .await?
            .into_iter()
            .find(|e| e.container.as_deref() == Some(container) || e.id.starts_with(container))
            .ok_or_else(|| Error::Name(format!("no tabby endpoint for container {container}")))?;
        let current = store
            .endpoint_versioned(&endpoint.host, &endpoint.id)
            .await?
            .ok_or_else(|| Error::Name(format!("container {container} went away")))?;
        let mut updated = current.value;
        change(&mut updated.profiles);
        if let Some(unknown) = updated.profiles.iter().find(|p| !known.contains(p)) {
            return Err(Error::Missing(unknown.clone()));
        }
        if store
            .swap_endpoint(&updated, Expect::Revision(current.revision))
            .await?
        {
            return Ok(updated.profiles);
        }
    }
    Err(Error::Contention)
}
