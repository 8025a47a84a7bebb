//! Bootstrap: resolve and check every member before changing anything,
//! record the cluster, start it from the first member, join the others one
//! at a time by state transfer, and verify as the source article does
//! (`wsrep_incoming_addresses` lists every member) plus a canary row.

use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use serde::Serialize;

use super::check;
use super::state::GaleraState;
use super::wait::{Waiter, probe};
use crate::docker::DockerEngine;
use crate::model::Endpoint;
use crate::model::galera::{GaleraCluster, GaleraMember, GaleraStart, SstMethod};
use crate::mysql::resolve::Directory;
use crate::mysql::{Credentials, Error, Member, Result, Target};
use crate::store::Store;

/// A member as tabby's records place it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub target: Target,
    pub container: String,
    pub host: String,
    /// None while the container is stopped (its endpoint is gone).
    pub endpoint: Option<Endpoint>,
}

/// Members' addresses as tabby's endpoints hold them now: a container
/// that started again may have another one.
pub async fn refresh(store: &Store, members: &mut [Resolved]) -> Result<()> {
    let endpoints = store.endpoints().await?;
    for m in members {
        match placement(&endpoints, &m.host, &m.container) {
            Placement::At(endpoint) => {
                m.target.ip = endpoint.ip;
                m.endpoint = Some(endpoint.clone());
            }
            // Stopped: the address it had is the best guess.
            Placement::Stopped => m.endpoint = None,
            Placement::Ambiguous => {}
        }
    }
    Ok(())
}

/// Where tabby's endpoint records place a member now.
pub enum Placement<'a> {
    At(&'a Endpoint),
    /// No endpoint: the container is stopped.
    Stopped,
    /// Two endpoints on its host carry its name: neither is trusted.
    Ambiguous,
}

pub fn placement<'a>(endpoints: &'a [Endpoint], host: &str, container: &str) -> Placement<'a> {
    let mut found = endpoints
        .iter()
        .filter(|e| e.host == host && e.container.as_deref() == Some(container));
    match (found.next(), found.next()) {
        (Some(endpoint), None) => Placement::At(endpoint),
        (None, _) => Placement::Stopped,
        _ => Placement::Ambiguous,
    }
}

pub struct Galera<'a> {
    pub store: &'a Store,
    pub docker: Option<&'a DockerEngine>,
    pub credentials: &'a Credentials,
    /// How long each member may take to reach a state.
    pub timeout: Duration,
    /// Prints a line of progress.
    pub say: &'a (dyn Fn(&str) + Send + Sync),
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberReport {
    pub container: String,
    pub host: String,
    pub address: String,
    pub state: GaleraState,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cluster: String,
    /// False when the cluster already was as asked.
    pub changed: bool,
    pub members: Vec<MemberReport>,
}

impl Galera<'_> {
    pub(super) fn waiter<'b>(&'b self, cluster: &'b str) -> Waiter<'b> {
        Waiter {
            store: self.store,
            cluster,
            credentials: self.credentials,
            timeout: self.timeout,
        }
    }

    /// Finds members in tabby's endpoint records.
    pub async fn resolve(&self, specs: &[String]) -> Result<Vec<Resolved>> {
        let directory = Directory::load(self.store).await?;
        let endpoints = self.store.endpoints().await?;
        let mut resolved: Vec<Resolved> = Vec::new();
        for spec in specs {
            let target = directory.resolve(spec, self.docker).await?;
            let endpoint = endpoints
                .iter()
                .find(|e| e.ip == target.ip)
                .ok_or_else(|| Error::Resolve(format!("{spec}: not on a tabby network")))?;
            let container = endpoint.container.clone().ok_or_else(|| {
                Error::Resolve(format!(
                    "{spec}: tabby has not learnt its container's name yet"
                ))
            })?;
            if resolved.iter().any(|r| r.container == container) {
                return Err(Error::Invalid(format!("{container} is named twice")));
            }
            resolved.push(Resolved {
                target,
                container,
                host: endpoint.host.clone(),
                endpoint: Some(endpoint.clone()),
            });
        }
        Ok(resolved)
    }

    /// Connects to every member and checks what Galera needs; nothing is
    /// changed unless every member passes.
    pub async fn check_members(&self, members: &[Resolved]) -> Result<()> {
        let pairs: Vec<(String, &Endpoint)> = members
            .iter()
            .filter_map(|m| Some((m.container.clone(), m.endpoint.as_ref()?)))
            .collect();
        let profiles = self.store.profiles().await?;
        check::profiles(&pairs, &profiles)?;
        let checks = members.iter().map(|m| async move {
            let mut conn = Member::connect(&m.target, self.credentials).await?;
            let settings = check::read(&mut conn).await;
            let flavor = conn.flavor;
            conn.disconnect().await;
            check::check(&m.target.to_string(), &flavor, &settings?)?;
            Ok::<_, Error>((m.container.clone(), flavor))
        });
        let mut flavors = Vec::new();
        for result in join_all(checks).await {
            flavors.push(result?);
        }
        check::same_version(&flavors)
    }

    pub async fn bootstrap(&self, name: &str, specs: &[String], sst: SstMethod) -> Result<Report> {
        if specs.len() < 2 {
            return Err(Error::Invalid(
                "name at least two members (three or more keep a majority when one fails)".into(),
            ));
        }
        self.form(name, specs, sst).await
    }

    /// Bootstrap with any number of members: label-driven clusters start
    /// from their first container and grow as the others appear.
    pub async fn form(&self, name: &str, specs: &[String], sst: SstMethod) -> Result<Report> {
        crate::mysql::declare::validate_cluster_name(name)?;
        let members = self.resolve(specs).await?;
        self.check_members(&members).await?;
        let existing = self.store.galera_cluster(name).await?;
        if let Some(record) = &existing {
            let recorded: Vec<&str> = record
                .members
                .iter()
                .map(|m| m.container.as_str())
                .collect();
            let asked: Vec<&str> = members.iter().map(|m| m.container.as_str()).collect();
            if recorded != asked {
                return Err(Error::Invalid(format!(
                    "Galera cluster {name} exists with members {}: add or remove members with \
                     `tabby mysql galera join|leave --cluster {name} C`",
                    recorded.join(", ")
                )));
            }
            if let Ok(report) = self.verify(name, &members).await {
                (self.say)("every member is Synced in one Primary cluster: unchanged");
                return Ok(Report {
                    changed: false,
                    ..report
                });
            }
        }
        self.refuse_foreign_clusters(&members).await?;
        let record = GaleraCluster {
            name: name.to_string(),
            sst,
            members: members
                .iter()
                .enumerate()
                .map(|(i, m)| GaleraMember {
                    container: m.container.clone(),
                    host: m.host.clone(),
                    ip: m.target.ip,
                    start: if i == 0 {
                        GaleraStart::NewCluster
                    } else {
                        GaleraStart::Join
                    },
                    restarts: 0,
                    probes: 0,
                    safe_to_bootstrap: false,
                })
                .collect(),
            updated: Utc::now(),
        };
        for m in &members {
            self.store.delete_galera_status(name, &m.container).await?;
        }
        self.start_from(record, &members, 0).await?;
        let report = self.verify(name, &members).await?;
        Ok(Report {
            changed: true,
            ..report
        })
    }

    /// A member already in a running cluster of more than itself belongs
    /// to someone: bootstrapping it again would split that cluster.
    async fn refuse_foreign_clusters(&self, members: &[Resolved]) -> Result<()> {
        for m in members {
            if let Ok(state) = probe(m, self.credentials).await
                && state.primary()
                && state.cluster_size > 1
            {
                return Err(Error::Check {
                    member: m.target.to_string(),
                    message: format!(
                        "already in a Galera cluster of {} members ({}): leave it first",
                        state.cluster_size, state.cluster_uuid
                    ),
                });
            }
        }
        Ok(())
    }

    /// Starts the cluster from `members[first]` as a new cluster, then
    /// restarts every other member to join it, one at a time (one donor
    /// serves one state transfer at a time).
    pub(super) async fn start_from(
        &self,
        mut record: GaleraCluster,
        members: &[Resolved],
        first: usize,
    ) -> Result<()> {
        let name = record.name.clone();
        let waiter = self.waiter(&name);
        let since = Utc::now();
        let source = &members[first];
        let m = record
            .member_mut(&source.container)
            .expect("member of the record");
        m.start = GaleraStart::NewCluster;
        m.restarts += 1;
        record.updated = since;
        self.store.put_galera_cluster(&record).await?;
        (self.say)(&format!("starting a new cluster on {}", source.target));
        waiter
            .until(source, "a one-member Primary cluster", since, |s| {
                s.synced() && s.cluster_size >= 1
            })
            .await?;
        let m = record
            .member_mut(&source.container)
            .expect("member of the record");
        m.start = GaleraStart::Join;
        m.safe_to_bootstrap = false;
        let mut size = 1;
        for (i, joiner) in members.iter().enumerate() {
            if i == first {
                continue;
            }
            let since = Utc::now();
            let m = record
                .member_mut(&joiner.container)
                .expect("member of the record");
            m.start = GaleraStart::Join;
            m.safe_to_bootstrap = false;
            m.restarts += 1;
            record.updated = since;
            self.store.put_galera_cluster(&record).await?;
            (self.say)(&format!(
                "{} joins ({} state transfer)",
                joiner.target, record.sst
            ));
            size += 1;
            waiter
                .until(
                    joiner,
                    &format!("Synced in a cluster of {size}"),
                    since,
                    |s| s.synced() && s.cluster_size >= size,
                )
                .await?;
        }
        Ok(())
    }

    /// Every member Synced in one Primary cluster of all of them, listing
    /// every member's address, and a canary row written on the first read
    /// on every other.
    pub async fn verify(&self, name: &str, members: &[Resolved]) -> Result<Report> {
        let mut members = members.to_vec();
        refresh(self.store, &mut members).await?;
        let members = &members[..];
        let ips: Vec<_> = members.iter().map(|m| m.target.ip).collect();
        let n = members.len() as u32;
        let mut reports = Vec::new();
        for m in members {
            let state = probe(m, self.credentials).await?;
            let unhealthy = |message: String| Error::Unhealthy {
                member: m.target.to_string(),
                message,
            };
            if !state.synced() || state.cluster_size != n {
                return Err(unhealthy(format!(
                    "{}; want Synced in a Primary cluster of {n}",
                    state.describe()
                )));
            }
            if !state.lists(&ips) {
                return Err(unhealthy(format!(
                    "wsrep_incoming_addresses is {:?}, not every member's tabby address",
                    state.incoming_addresses
                )));
            }
            if reports
                .first()
                .is_some_and(|r: &MemberReport| r.state.cluster_uuid != state.cluster_uuid)
            {
                return Err(unhealthy("in another cluster than the first member".into()));
            }
            reports.push(MemberReport {
                container: m.container.clone(),
                host: m.host.clone(),
                address: m.target.ip.to_string(),
                state,
            });
        }
        super::canary::check(members, self.credentials).await?;
        Ok(Report {
            cluster: name.to_string(),
            changed: false,
            members: reports,
        })
    }
}
