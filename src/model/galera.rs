//! Galera clusters as tabby runs them. The cluster record is what the CLI
//! wants: each member's start mode and how many restarts or recovery
//! probes it has asked for. The agent on a member's host makes the
//! container match (its config file, a restart, a probe) and reports what
//! it did in the member's status record. Passwords are never stored.

use std::fmt;
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validate::{self as v, Validate, ValidationError, record};

/// How state snapshots travel to a joining member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SstMethod {
    #[default]
    Rsync,
    Mariabackup,
}

impl SstMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SstMethod::Rsync => "rsync",
            SstMethod::Mariabackup => "mariabackup",
        }
    }
}

impl fmt::Display for SstMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a member's server starts next time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GaleraStart {
    /// As a new cluster (`gcomm://`): one member, once, at bootstrap or
    /// recovery.
    NewCluster,
    /// Joining the other members.
    Join,
    /// Not at all: the member left, and its container is stopped.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaleraMember {
    pub container: String,
    pub host: String,
    pub ip: Ipv4Addr,
    pub start: GaleraStart,
    /// Restarts asked for; the agent restarts the container when this is
    /// above what it last applied.
    #[serde(default)]
    pub restarts: u64,
    /// Recovery probes asked for (read the last committed position).
    #[serde(default)]
    pub probes: u64,
    /// Mark the member safe to bootstrap before its next start (recovery).
    #[serde(default)]
    pub safe_to_bootstrap: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaleraCluster {
    pub name: String,
    #[serde(default)]
    pub sst: SstMethod,
    pub members: Vec<GaleraMember>,
    pub updated: DateTime<Utc>,
}

impl GaleraCluster {
    pub fn member(&self, container: &str) -> Option<&GaleraMember> {
        self.members.iter().find(|m| m.container == container)
    }

    pub fn member_mut(&mut self, container: &str) -> Option<&mut GaleraMember> {
        self.members.iter_mut().find(|m| m.container == container)
    }

    /// `gcomm://a,b,c`: every member that is not stopped, in order.
    pub fn address(&self) -> String {
        let ips: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.start != GaleraStart::Stopped)
            .map(|m| m.ip.to_string())
            .collect();
        format!("gcomm://{}", ips.join(","))
    }
}

/// A last committed position, from `grastate.dat` or `--wsrep-recover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaleraPosition {
    pub uuid: String,
    pub seqno: i64,
    pub safe_to_bootstrap: bool,
}

/// What the agent on a member's host last did to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaleraMemberStatus {
    pub container: String,
    pub host: String,
    #[serde(default)]
    pub applied_restarts: u64,
    #[serde(default)]
    pub applied_probes: u64,
    /// The position found by the last probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<GaleraPosition>,
    /// Why the last attempt failed, until one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub updated: DateTime<Utc>,
}

impl Validate for GaleraCluster {
    fn validate(&self) -> Result<(), ValidationError> {
        v::name("cluster name", &self.name)?;
        let mut seen = std::collections::BTreeSet::new();
        for member in &self.members {
            v::container_name(&member.container)?;
            v::hostname(&member.host)?;
            if !seen.insert(&member.container) {
                return Err(record(
                    "galera cluster",
                    format!("{} is listed twice", member.container),
                ));
            }
        }
        Ok(())
    }
}

impl Validate for GaleraMemberStatus {
    fn validate(&self) -> Result<(), ValidationError> {
        v::container_name(&self.container)?;
        v::hostname(&self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, ip: [u8; 4], start: GaleraStart) -> GaleraMember {
        GaleraMember {
            container: name.into(),
            host: "h1".into(),
            ip: ip.into(),
            start,
            restarts: 0,
            probes: 0,
            safe_to_bootstrap: false,
        }
    }

    #[test]
    fn the_address_lists_members_that_run_and_duplicates_are_refused() {
        let mut cluster = GaleraCluster {
            name: "g".into(),
            sst: SstMethod::Rsync,
            members: vec![
                member("a", [198, 19, 0, 1], GaleraStart::NewCluster),
                member("b", [198, 19, 0, 2], GaleraStart::Join),
                member("c", [198, 19, 0, 3], GaleraStart::Stopped),
            ],
            updated: Utc::now(),
        };
        assert_eq!(cluster.address(), "gcomm://198.19.0.1,198.19.0.2");
        assert!(cluster.validate().is_ok());
        cluster
            .members
            .push(member("a", [198, 19, 0, 4], GaleraStart::Join));
        assert!(cluster.validate().is_err());
    }
}
