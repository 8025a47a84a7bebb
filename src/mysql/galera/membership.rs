//! Members that come and go: `join` adds one by state transfer, `leave`
//! stops one cleanly (a normal shutdown tells the others it left, so the
//! cluster shrinks and stays Primary). The others' config files follow
//! the record, so their next start knows the new member list.

use chrono::Utc;

use super::cluster::{Galera, Report, Resolved, refresh};
use crate::model::galera::{GaleraCluster, GaleraMember, GaleraStart};
use crate::mysql::Target;
use crate::mysql::resolve::MYSQL_PORT;
use crate::mysql::{Error, Result};

impl Galera<'_> {
    pub(super) async fn record(&self, name: &str) -> Result<GaleraCluster> {
        self.store.galera_cluster(name).await?.ok_or_else(|| {
            Error::Invalid(format!(
                "no Galera cluster {name}: make it with `tabby mysql galera bootstrap`"
            ))
        })
    }

    /// The recorded members that have not left, where tabby's endpoints
    /// place them now (stopped ones where they were last seen).
    pub(super) async fn running_members(&self, record: &GaleraCluster) -> Result<Vec<Resolved>> {
        let mut members: Vec<Resolved> = record
            .members
            .iter()
            .filter(|m| m.start != GaleraStart::Stopped)
            .map(|m| Resolved {
                target: Target {
                    name: m.container.clone(),
                    ip: m.ip,
                    port: MYSQL_PORT,
                    host: Some(m.host.clone()),
                    pool: None,
                },
                container: m.container.clone(),
                host: m.host.clone(),
                endpoint: None,
            })
            .collect();
        refresh(self.store, &mut members).await?;
        Ok(members)
    }

    pub async fn join(&self, name: &str, spec: &str) -> Result<Report> {
        let mut record = self.record(name).await?;
        let joiner = self.resolve(&[spec.to_string()]).await?.remove(0);
        let members = self.running_members(&record).await?;
        if record.member(&joiner.container).is_some() {
            if let Ok(report) = self.verify(name, &members).await {
                (self.say)(&format!("{} is a Synced member: unchanged", joiner.target));
                return Ok(report);
            }
            return Err(Error::Invalid(format!(
                "{} is a member of {name} already, but the cluster is not healthy: see \
                 `tabby mysql status --cluster {name}`",
                joiner.container
            )));
        }
        let mut all = members.clone();
        all.push(joiner.clone());
        self.check_members(&all).await?;
        self.verify(name, &members).await?;
        let since = Utc::now();
        record.members.push(GaleraMember {
            container: joiner.container.clone(),
            host: joiner.host.clone(),
            ip: joiner.target.ip,
            start: GaleraStart::Join,
            restarts: 1,
            probes: 0,
            safe_to_bootstrap: false,
        });
        record.updated = since;
        self.store
            .delete_galera_status(name, &joiner.container)
            .await?;
        self.store.put_galera_cluster(&record).await?;
        (self.say)(&format!(
            "{} joins ({} state transfer)",
            joiner.target, record.sst
        ));
        let size = all.len() as u32;
        self.waiter(name)
            .until(
                &joiner,
                &format!("Synced in a cluster of {size}"),
                since,
                |s| s.synced() && s.cluster_size >= size,
            )
            .await?;
        let report = self.verify(name, &all).await?;
        Ok(Report {
            changed: true,
            ..report
        })
    }

    pub async fn leave(&self, name: &str, spec: &str) -> Result<Report> {
        let mut record = self.record(name).await?;
        let leaver = self.resolve(&[spec.to_string()]).await?.remove(0);
        let Some(member) = record.member_mut(&leaver.container) else {
            return Err(Error::Invalid(format!(
                "{} is not a member of Galera cluster {name}",
                leaver.container
            )));
        };
        let since = Utc::now();
        member.start = GaleraStart::Stopped;
        member.restarts += 1;
        let restarts = member.restarts;
        record.updated = since;
        self.store.put_galera_cluster(&record).await?;
        (self.say)(&format!(
            "stopping {} (it leaves the cluster)",
            leaver.target
        ));
        self.waiter(name)
            .applied(&leaver, restarts, 0, since)
            .await?;
        record.members.retain(|m| m.container != leaver.container);
        record.updated = Utc::now();
        self.store.put_galera_cluster(&record).await?;
        self.store
            .delete_galera_status(name, &leaver.container)
            .await?;
        let rest = self.running_members(&record).await?;
        let size = rest.len() as u32;
        if let Some(first) = rest.first() {
            self.waiter(name)
                .until(
                    first,
                    &format!("Synced in a cluster of {size}"),
                    since,
                    |s| s.synced() && s.cluster_size == size,
                )
                .await?;
        }
        let report = self.verify(name, &rest).await?;
        Ok(Report {
            changed: true,
            ..report
        })
    }
}
