//! What an agent does to one member on its host so the container matches
//! the cluster record: probe for its last committed position when asked,
//! keep tabby's config file as the record says, and restart (or start)
//! the container when a restart is asked for. Each step is read before
//! written, so running it again changes nothing.

use std::time::Duration;

use chrono::Utc;

use super::config::{
    self, CONF_DIR, CONF_NAME, DATA_DIR, GRASTATE, mark_safe_to_bootstrap, parse_grastate,
    parse_recovered,
};
use crate::docker::{Containers, Error as DockerError};
use crate::model::galera::{
    GaleraCluster, GaleraMember, GaleraMemberStatus, GaleraPosition, GaleraStart,
};

/// A `--wsrep-recover` run reads InnoDB's header and exits: seconds.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{container}: {source}")]
    Docker {
        container: String,
        #[source]
        source: DockerError,
    },
    #[error("{container}: {message}")]
    Member { container: String, message: String },
}

fn docker(container: &str) -> impl FnOnce(DockerError) -> Error + '_ {
    move |source| Error::Docker {
        container: container.to_string(),
        source,
    }
}

/// A fresh report for a member no agent has touched yet.
pub fn new_status(member: &GaleraMember) -> GaleraMemberStatus {
    GaleraMemberStatus {
        container: member.container.clone(),
        host: member.host.clone(),
        applied_restarts: 0,
        applied_probes: 0,
        position: None,
        error: None,
        updated: Utc::now(),
    }
}

/// Whether the record asks anything of this member that was not done.
pub fn pending(member: &GaleraMember, status: &GaleraMemberStatus) -> bool {
    member.probes > status.applied_probes || member.restarts > status.applied_restarts
}

/// Converges one member; the report to record. Steps already done are
/// kept in the report even when a later one fails.
pub async fn converge(
    containers: &dyn Containers,
    cluster: &GaleraCluster,
    member: &GaleraMember,
    mut status: GaleraMemberStatus,
) -> (GaleraMemberStatus, Result<bool, Error>) {
    let result = steps(containers, cluster, member, &mut status).await;
    status.error = result.as_ref().err().map(|e| e.to_string());
    status.updated = Utc::now();
    (status, result)
}

/// True if anything was changed.
async fn steps(
    containers: &dyn Containers,
    cluster: &GaleraCluster,
    member: &GaleraMember,
    status: &mut GaleraMemberStatus,
) -> Result<bool, Error> {
    let name = member.container.as_str();
    let Some(running) = containers.running(name).await.map_err(docker(name))? else {
        return Err(Error::Member {
            container: name.to_string(),
            message: "no such container on this host".into(),
        });
    };
    if member.start == GaleraStart::Stopped {
        if running {
            containers.stop(name).await.map_err(docker(name))?;
        }
        status.applied_restarts = member.restarts;
        return Ok(running);
    }
    let mut changed = false;
    if member.probes > status.applied_probes {
        if running {
            containers.stop(name).await.map_err(docker(name))?;
        }
        status.position = Some(probe(containers, cluster, member).await?);
        status.applied_probes = member.probes;
        changed = true;
    }
    changed |= write_config(containers, cluster, member, false).await?;
    if member.restarts > status.applied_restarts {
        if member.safe_to_bootstrap {
            mark_safe(containers, name).await?;
        }
        let is_running = containers.running(name).await.map_err(docker(name))?;
        if is_running == Some(true) {
            containers.restart(name).await.map_err(docker(name))?;
        } else {
            containers.start(name).await.map_err(docker(name))?;
        }
        status.applied_restarts = member.restarts;
        changed = true;
    }
    Ok(changed)
}

/// Writes tabby's config file if it differs; true if it did.
async fn write_config(
    containers: &dyn Containers,
    cluster: &GaleraCluster,
    member: &GaleraMember,
    recover: bool,
) -> Result<bool, Error> {
    let name = member.container.as_str();
    let wanted = config::render(cluster, member, recover);
    let path = format!("{CONF_DIR}/{CONF_NAME}");
    let current = containers
        .read_file(name, &path)
        .await
        .map_err(docker(name))?;
    if current.as_deref() == Some(wanted.as_bytes()) {
        return Ok(false);
    }
    containers
        .write_file(name, CONF_DIR, CONF_NAME, wanted.as_bytes())
        .await
        .map_err(docker(name))?;
    Ok(true)
}

async fn mark_safe(containers: &dyn Containers, name: &str) -> Result<(), Error> {
    let current = containers
        .read_file(name, GRASTATE)
        .await
        .map_err(docker(name))?;
    let text = String::from_utf8_lossy(current.as_deref().unwrap_or_default()).into_owned();
    if parse_grastate(&text).is_some_and(|p| p.safe_to_bootstrap) {
        return Ok(());
    }
    let marked = mark_safe_to_bootstrap(&text);
    containers
        .write_file(name, DATA_DIR, "grastate.dat", marked.as_bytes())
        .await
        .map_err(docker(name))
}

/// The stopped member's last committed position: `grastate.dat` after a
/// clean shutdown, or a `--wsrep-recover` run after a crash (seqno -1).
async fn probe(
    containers: &dyn Containers,
    cluster: &GaleraCluster,
    member: &GaleraMember,
) -> Result<GaleraPosition, Error> {
    let name = member.container.as_str();
    let failed = |message: String| Error::Member {
        container: name.to_string(),
        message,
    };
    let state = containers
        .read_file(name, GRASTATE)
        .await
        .map_err(docker(name))?
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .and_then(|text| parse_grastate(&text));
    if let Some(position) = &state
        && position.seqno >= 0
    {
        return Ok(position.clone());
    }
    write_config(containers, cluster, member, true).await?;
    let since = Utc::now().timestamp() - 1;
    containers.start(name).await.map_err(docker(name))?;
    let exit = tokio::time::timeout(PROBE_TIMEOUT, containers.wait_exit(name)).await;
    let log = containers
        .logs_since(name, since)
        .await
        .map_err(docker(name))?;
    write_config(containers, cluster, member, false).await?;
    match exit {
        Err(_) => {
            let _ = containers.stop(name).await;
            return Err(failed(format!(
                "--wsrep-recover did not finish within {} s",
                PROBE_TIMEOUT.as_secs()
            )));
        }
        Ok(result) => {
            result.map_err(docker(name))?;
        }
    }
    let (uuid, seqno) = parse_recovered(&log).ok_or_else(|| {
        failed("--wsrep-recover logged no position (is the wsrep provider loaded?)".into())
    })?;
    Ok(GaleraPosition {
        uuid,
        seqno,
        safe_to_bootstrap: state.is_some_and(|s| s.safe_to_bootstrap),
    })
}

#[cfg(test)]
#[path = "converge_tests.rs"]
mod tests;
