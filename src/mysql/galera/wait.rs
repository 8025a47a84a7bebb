//! Waiting for members to reach a state, over SQL, while watching their
//! agents' reports: an agent that failed to restart a member says why at
//! once rather than after the timeout.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::cluster::Resolved;
use super::state::{self, GaleraState};
use crate::mysql::{Credentials, Error, Member, Result};
use crate::store::Store;

const POLL: Duration = Duration::from_millis(500);
const QUICK_CONNECT: Duration = Duration::from_secs(3);
/// How long a started member's container may be gone (a restart's stop
/// and start) before it counts as stopped.
const GONE: Duration = Duration::from_secs(30);

/// The member's state now, or why it could not be read.
pub async fn probe(member: &Resolved, credentials: &Credentials) -> Result<GaleraState> {
    let connecting = Member::connect(&member.target, credentials);
    let mut conn = match tokio::time::timeout(QUICK_CONNECT, connecting).await {
        Ok(conn) => conn?,
        Err(_) => {
            return Err(Error::Connect {
                member: member.target.to_string(),
                message: format!("no answer within {} s", QUICK_CONNECT.as_secs()),
            });
        }
    };
    let state = state::read(&mut conn).await;
    conn.disconnect().await;
    state
}

pub struct Waiter<'a> {
    pub store: &'a Store,
    pub cluster: &'a str,
    pub credentials: &'a Credentials,
    pub timeout: Duration,
}

impl Waiter<'_> {
    /// Waits until the member's state passes `want`; `what` names it.
    pub async fn until(
        &self,
        member: &Resolved,
        what: &str,
        since: DateTime<Utc>,
        want: impl Fn(&GaleraState) -> bool,
    ) -> Result<GaleraState> {
        let deadline = Instant::now() + self.timeout;
        let mut last;
        let mut member = member.clone();
        // A container that ran and stopped again (its server exited) is
        // reported without waiting out the timeout.
        let (mut seen, mut gone_since) = (false, None::<Instant>);
        loop {
            super::cluster::refresh(self.store, std::slice::from_mut(&mut member)).await?;
            let member = &member;
            if member.endpoint.is_some() {
                (seen, gone_since) = (true, None);
            } else if seen && gone_since.get_or_insert_with(Instant::now).elapsed() > GONE {
                return Err(Error::Unhealthy {
                    member: member.target.to_string(),
                    message: format!(
                        "its container stopped while becoming {what}: see `docker logs {}` on {}",
                        member.container, member.host
                    ),
                });
            }
            match probe(member, self.credentials).await {
                Ok(state) if want(&state) => return Ok(state),
                Ok(state) => last = state.describe(),
                Err(e) => last = e.to_string(),
            }
            self.agent_error(member, since).await?;
            if Instant::now() >= deadline {
                return Err(Error::Unhealthy {
                    member: member.target.to_string(),
                    message: format!(
                        "not {what} within {} s; last seen: {last}",
                        self.timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the member's agent has applied `restarts` and `probes`.
    pub async fn applied(
        &self,
        member: &Resolved,
        restarts: u64,
        probes: u64,
        since: DateTime<Utc>,
    ) -> Result<crate::model::galera::GaleraMemberStatus> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let statuses = self.store.galera_statuses(self.cluster).await?;
            if let Some(s) = statuses.iter().find(|s| s.container == member.container)
                && s.applied_restarts >= restarts
                && s.applied_probes >= probes
            {
                return Ok(s.clone());
            }
            self.agent_error(member, since).await?;
            if Instant::now() >= deadline {
                return Err(Error::Unhealthy {
                    member: member.target.to_string(),
                    message: format!(
                        "the agent on {} did not act within {} s: is it running?",
                        member.host,
                        self.timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The agent's failure on this member, reported after `since`.
    async fn agent_error(&self, member: &Resolved, since: DateTime<Utc>) -> Result<()> {
        let statuses = self.store.galera_statuses(self.cluster).await?;
        match statuses.iter().find(|s| s.container == member.container) {
            Some(s) if s.updated >= since => match &s.error {
                Some(error) => Err(Error::Unhealthy {
                    member: member.target.to_string(),
                    message: format!("the agent on {} failed: {error}", member.host),
                }),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}
