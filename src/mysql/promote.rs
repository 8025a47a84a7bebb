//! Graceful switchover: the master stops taking writes, the chosen replica
//! catches up to its last position, becomes the master, and everyone else
//! (the old master included) replicates from it. With the old master
//! unreachable tabby cannot prove the replica has everything it wrote, so
//! it refuses unless forced.

use std::time::Duration;

use serde::Serialize;

use super::bootstrap::{VERIFY_TIMEOUT, check, ensure_replication_user, replicate_from, verify};
use super::{Credentials, Error, Member, Result, Target};

pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize)]
pub struct PromoteReport {
    pub old_master: String,
    pub new_master: Target,
    /// Members now replicating from the new master.
    pub replicas: Vec<Target>,
    /// Members that could not be reached (only with --force).
    pub skipped: Vec<String>,
}

/// A recorded member: its address, or why it has none any more (its
/// container is gone, so tabby has no endpoint for it).
pub type Found = std::result::Result<Target, (String, Error)>;

fn name(found: &Found) -> String {
    match found {
        Ok(target) => target.to_string(),
        Err((name, _)) => name.clone(),
    }
}

async fn reach(found: &Found, credentials: &Credentials) -> Result<Member> {
    match found {
        Ok(target) => Member::connect(target, credentials).await,
        Err((name, e)) => Err(Error::Connect {
            member: name.clone(),
            message: e.to_string(),
        }),
    }
}

pub async fn promote(
    master: &Found,
    replicas: &[Found],
    candidate: &Target,
    credentials: &Credentials,
    repl_hosts: &[String],
    force: bool,
) -> Result<PromoteReport> {
    if !replicas
        .iter()
        .any(|r| r.as_ref().is_ok_and(|r| r.ip == candidate.ip))
    {
        return Err(Error::Invalid(format!(
            "{candidate} is not a replica of {}: promote one of {}",
            name(master),
            replicas.iter().map(name).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut new_master = Member::connect(candidate, credentials).await?;
    let mut skipped = Vec::new();
    let old_master = match reach(master, credentials).await {
        Ok(member) => Some(member),
        Err(e) if force => {
            skipped.push(e.to_string());
            None
        }
        Err(e) => {
            return Err(Error::Check {
                member: candidate.to_string(),
                message: format!(
                    "cannot be proven caught up, the master is unreachable ({e}); \
                     --force promotes it anyway, losing what it had not received"
                ),
            });
        }
    };
    let mut others = Vec::new();
    for found in replicas
        .iter()
        .filter(|r| !r.as_ref().is_ok_and(|r| r.ip == candidate.ip))
    {
        match reach(found, credentials).await {
            Ok(member) => others.push(member),
            Err(e) if force => skipped.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    let mut all: Vec<&Member> = vec![&new_master];
    all.extend(old_master.iter());
    all.extend(others.iter());
    check(&all)?;

    let mut old_master = old_master;
    if let Some(old) = old_master.as_mut() {
        // read_only stops ordinary users; the lock stops root too while
        // the candidate catches up.
        old.exec("making it read-only", "SET GLOBAL read_only = ON")
            .await?;
        if let Err(e) = old.global_read_lock("stopping writes").await {
            let _ = old
                .exec("making it writable again", "SET GLOBAL read_only = OFF")
                .await;
            return Err(e);
        }
        let position = old.gtid_position().await?;
        if !new_master
            .wait_for_gtid(&position, CATCH_UP_TIMEOUT)
            .await?
        {
            let _ = old.exec("releasing writes", "UNLOCK TABLES").await;
            let _ = old
                .exec("making it writable again", "SET GLOBAL read_only = OFF")
                .await;
            return Err(Error::Check {
                member: candidate.to_string(),
                message: format!(
                    "did not catch up with the master's position {position} within {} s; \
                     the master is writable again",
                    CATCH_UP_TIMEOUT.as_secs()
                ),
            });
        }
        for other in others.iter_mut() {
            // Best effort: auto-positioning catches up later anyway.
            let _ = other.wait_for_gtid(&position, CATCH_UP_TIMEOUT).await;
        }
    }

    let flavor = new_master.flavor;
    new_master
        .exec("stopping replication", flavor.stop_replication())
        .await?;
    new_master
        .exec("forgetting its master", flavor.reset_replication())
        .await?;
    new_master
        .exec("making it writable", "SET GLOBAL read_only = OFF")
        .await?;
    ensure_replication_user(&mut new_master, repl_hosts, credentials).await?;

    let mut repointed = Vec::new();
    for other in others.iter_mut() {
        replicate_from(other, candidate, credentials).await?;
        repointed.push(other.target.clone());
    }
    if let Some(old) = old_master.as_mut() {
        old.exec("releasing writes", "UNLOCK TABLES").await?;
        if let Some(statement) = old.flavor.adopt_own_history() {
            old.exec("keeping its own history", statement).await?;
        }
        replicate_from(old, candidate, credentials).await?;
        repointed.insert(0, old.target.clone());
    }
    let mut followers: Vec<Member> = old_master.into_iter().chain(others).collect();
    verify(&mut new_master, &mut followers, VERIFY_TIMEOUT).await?;
    new_master.disconnect().await;
    for member in followers {
        member.disconnect().await;
    }
    Ok(PromoteReport {
        old_master: name(master),
        new_master: candidate.clone(),
        replicas: repointed,
        skipped,
    })
}
