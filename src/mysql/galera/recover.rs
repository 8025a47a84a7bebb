//! Whole-cluster recovery. When no member is Primary, every member's agent
//! probes its stopped container for the last committed position
//! (`grastate.dat`, or `--wsrep-recover` after a crash); the member with
//! the highest seqno is marked safe to bootstrap and starts the cluster,
//! and the others rejoin it (IST where their position allows).

use chrono::Utc;
use serde::Serialize;

use super::cluster::{Galera, Report};
use super::config::recovery_source;
use super::wait::probe;
use crate::model::galera::{GaleraPosition, GaleraStart};
use crate::mysql::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub cluster: String,
    /// Member and the position its agent found, in record order.
    pub positions: Vec<(String, Option<GaleraPosition>)>,
    /// The member the cluster starts from.
    pub source: String,
}

impl Plan {
    pub fn lines(&self) -> Vec<String> {
        self.positions
            .iter()
            .map(|(member, position)| {
                let seqno = position
                    .as_ref()
                    .map(|p| p.seqno.to_string())
                    .unwrap_or("?".into());
                if *member == self.source {
                    format!("{member}: last committed {seqno}, the highest: marked safe to bootstrap, starts the cluster")
                } else {
                    format!("{member}: last committed {seqno}: rejoins")
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    pub plan: Plan,
    /// None with --dry-run.
    pub report: Option<Report>,
}

impl Galera<'_> {
    pub async fn recover(&self, name: &str, dry_run: bool) -> Result<Recovered> {
        let mut record = self.record(name).await?;
        let members = self.running_members(&record).await?;
        for m in &members {
            if let Ok(state) = probe(m, self.credentials).await
                && state.primary()
            {
                return Err(Error::Invalid(format!(
                    "{} is Primary in a cluster of {}: the cluster is up, and members that \
                     restart rejoin it on their own; nothing to recover",
                    m.target, state.cluster_size
                )));
            }
        }
        let since = Utc::now();
        for m in record
            .members
            .iter_mut()
            .filter(|m| m.start != GaleraStart::Stopped)
        {
            m.probes += 1;
        }
        record.updated = since;
        self.store.put_galera_cluster(&record).await?;
        (self.say)("asking each member's agent for its last committed position");
        let waiter = self.waiter(name);
        let mut positions = Vec::new();
        for m in &members {
            let wanted = record.member(&m.container).map_or(0, |r| r.probes);
            let status = waiter.applied(m, 0, wanted, since).await?;
            positions.push((m.container.clone(), status.position));
        }
        let uuids: std::collections::BTreeSet<&str> = positions
            .iter()
            .filter_map(|(_, p)| p.as_ref())
            .filter(|p| p.seqno >= 0)
            .map(|p| p.uuid.as_str())
            .collect();
        if uuids.len() > 1 {
            return Err(Error::Invalid(format!(
                "members hold the histories of different clusters ({}): recover them by hand",
                uuids.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        let source = recovery_source(&positions)
            .ok_or_else(|| {
                Error::Invalid(
                    "a member's position is unknown: not guessing which is newest".into(),
                )
            })?
            .to_string();
        let plan = Plan {
            cluster: name.to_string(),
            positions,
            source: source.clone(),
        };
        for line in plan.lines() {
            (self.say)(&line);
        }
        if dry_run {
            return Ok(Recovered { plan, report: None });
        }
        let first = members
            .iter()
            .position(|m| m.container == source)
            .expect("the source is a member");
        if let Some(m) = record.member_mut(&source) {
            m.safe_to_bootstrap = true;
        }
        self.start_from(record, &members, first).await?;
        let report = self.verify(name, &members).await?;
        Ok(Recovered {
            plan,
            report: Some(Report {
                changed: true,
                ..report
            }),
        })
    }
}
