//! Clusters as tabby records them: bootstrap and promote resolve their
//! members, do the work, and record who is master; status reads the
//! record back and asks every member.

use chrono::Utc;
use futures::future::join_all;

use super::bootstrap::{self, Report};
use super::promote::{self, Found, PromoteReport};
use super::resolve::Directory;
use super::seed::Progress;
use super::status::{MemberStatus, member_status};
use super::{Credentials, Error, Member, Result, Target};
use crate::docker::DockerEngine;
use crate::model::MysqlCluster;
use crate::store::Store;

pub const DEFAULT_CLUSTER: &str = "default";

pub struct Context<'a> {
    pub store: &'a Store,
    /// The local Docker Engine, asked about names tabby has not recorded.
    pub docker: Option<&'a DockerEngine>,
}

impl<'a> Context<'a> {
    pub fn new(store: &'a Store, docker: &'a DockerEngine) -> Self {
        Context {
            store,
            docker: Some(docker),
        }
    }

    async fn resolve_all(&self, specs: &[String]) -> Result<Vec<Target>> {
        let directory = Directory::load(self.store).await?;
        let mut targets = Vec::new();
        for spec in specs {
            targets.push(directory.resolve(spec, self.docker).await?);
        }
        Ok(targets)
    }

    pub async fn bootstrap(
        &self,
        cluster: &str,
        master: &str,
        replicas: &[String],
        credentials: &Credentials,
        options: &bootstrap::Options,
        progress: &dyn Progress,
    ) -> Result<Report> {
        super::declare::validate_cluster_name(cluster)?;
        if replicas.is_empty() {
            return Err(Error::Invalid("name at least one replica".into()));
        }
        let mut specs = vec![master.to_string()];
        specs.extend(replicas.iter().cloned());
        let targets = self.resolve_all(&specs).await?;
        let report =
            bootstrap::bootstrap(&targets[0], &targets[1..], credentials, options, progress)
                .await?;
        let replica_names = targets[1..].iter().map(|t| t.name.clone()).collect();
        self.record(
            cluster,
            &targets[0].name,
            replica_names,
            credentials,
            &report.user_hosts,
        )
        .await?;
        Ok(report)
    }

    pub async fn promote(
        &self,
        cluster: Option<&str>,
        candidate: &str,
        credentials: &Credentials,
        force: bool,
    ) -> Result<PromoteReport> {
        let record = self.cluster_of(cluster, candidate).await?;
        let directory = Directory::load(self.store).await?;
        let mut found: Vec<Found> = Vec::new();
        for spec in std::iter::once(&record.master).chain(&record.replicas) {
            found.push(
                directory
                    .resolve(spec, self.docker)
                    .await
                    .map_err(|e| (spec.clone(), e)),
            );
        }
        let candidate = directory.resolve(candidate, self.docker).await?;
        let repl_hosts = if record.repl_hosts.is_empty() {
            let targets: Vec<Target> = found
                .iter()
                .filter_map(|f| f.as_ref().ok())
                .cloned()
                .collect();
            bootstrap::user_hosts(&targets)?
        } else {
            record.repl_hosts.clone()
        };
        let report = promote::promote(
            &found[0],
            &found[1..],
            &candidate,
            credentials,
            &repl_hosts,
            force,
        )
        .await?;
        // Members skipped with --force stay in the cluster as replicas.
        let followers: Vec<String> = std::iter::once(&record.master)
            .chain(&record.replicas)
            .zip(&found)
            .filter(|(_, f)| !f.as_ref().is_ok_and(|t| t.ip == candidate.ip))
            .map(|(spec, f)| f.as_ref().map(|t| t.name.clone()).unwrap_or(spec.clone()))
            .collect();
        self.record(
            &record.name,
            &candidate.name,
            followers,
            credentials,
            &repl_hosts,
        )
        .await?;
        Ok(report)
    }

    async fn record(
        &self,
        name: &str,
        master: &str,
        replicas: Vec<String>,
        credentials: &Credentials,
        repl_hosts: &[String],
    ) -> Result<()> {
        let cluster = MysqlCluster {
            name: name.to_string(),
            master: master.to_string(),
            replicas,
            repl_user: credentials.repl_user.clone(),
            repl_hosts: repl_hosts.to_vec(),
            updated: Utc::now(),
        };
        Ok(self.store.put_mysql_cluster(&cluster).await?)
    }

    /// The named cluster, or the one `member` belongs to.
    async fn cluster_of(&self, name: Option<&str>, member: &str) -> Result<MysqlCluster> {
        let clusters = self.store.mysql_clusters().await?;
        let found: Vec<MysqlCluster> = clusters
            .into_iter()
            .filter(|c| match name {
                Some(name) => c.name == name,
                None => c.master == member || c.replicas.iter().any(|r| r == member),
            })
            .collect();
        match found.len() {
            1 => Ok(found.into_iter().next().expect("one")),
            0 => Err(Error::Invalid(match name {
                Some(name) => format!("no MySQL cluster {name} (tabby mysql bootstrap makes one)"),
                None => format!("{member} is in no MySQL cluster tabby set up"),
            })),
            _ => Err(Error::Invalid(format!(
                "{member} is in several clusters: name one with --cluster"
            ))),
        }
    }

    /// Status of a recorded cluster (or of every cluster), or of the
    /// members named.
    pub async fn status(
        &self,
        cluster: Option<&str>,
        members: &[String],
        credentials: &Credentials,
    ) -> Result<Vec<(Option<String>, MemberStatus)>> {
        let mut wanted: Vec<(Option<String>, String, bool)> = Vec::new();
        if members.is_empty() {
            let clusters = self.store.mysql_clusters().await?;
            if let Some(name) = cluster
                && !clusters.iter().any(|c| c.name == name)
            {
                return Err(Error::Invalid(format!("no MySQL cluster {name}")));
            }
            for c in clusters
                .into_iter()
                .filter(|c| cluster.is_none_or(|n| n == c.name))
            {
                wanted.push((Some(c.name.clone()), c.master.clone(), true));
                for replica in c.replicas {
                    wanted.push((Some(c.name.clone()), replica, false));
                }
            }
        } else {
            wanted.extend(members.iter().map(|m| (None, m.clone(), false)));
        }
        let directory = Directory::load(self.store).await?;
        let lookups = wanted.iter().map(|(cluster, spec, is_master)| {
            let directory = &directory;
            async move {
                let target = directory.resolve(spec, self.docker).await;
                let status = match target {
                    Ok(target) => read_status(target, credentials, *is_master).await,
                    Err(e) => unreadable(spec, None, e),
                };
                (cluster.clone(), status)
            }
        });
        Ok(join_all(lookups).await)
    }
}

async fn read_status(target: Target, credentials: &Credentials, is_master: bool) -> MemberStatus {
    match Member::connect(&target, credentials).await {
        Ok(mut member) => {
            let status = member_status(&mut member, is_master).await;
            member.disconnect().await;
            status.unwrap_or_else(|e| unreadable(&target.name, Some(&target), e))
        }
        Err(e) => unreadable(&target.name, Some(&target), e),
    }
}

fn unreadable(name: &str, target: Option<&Target>, error: Error) -> MemberStatus {
    MemberStatus {
        name: name.to_string(),
        host: target.and_then(|t| t.host.clone()),
        address: target
            .map(|t| t.ip)
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        role: None,
        replica: None,
        gtid: None,
        read_only: None,
        error: Some(error.to_string()),
    }
}
