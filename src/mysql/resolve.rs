//! Finds a member by container name, container ID or address. tabby's own
//! endpoint records come first: they span every host, while a Docker
//! Engine only knows its own host's containers.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use super::{Error, Result};
use crate::docker::DockerEngine;
use crate::model::Endpoint;
use crate::store::Store;

pub const MYSQL_PORT: u16 = 3306;

/// A server to talk to: its routed address and what tabby knows of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Container name, or the address when no container is known.
    pub name: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The tabby host it lives on.
    pub host: Option<String>,
    /// The pool its address comes from: where replicas connect from.
    pub pool: Option<Ipv4Net>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == self.ip.to_string() {
            write!(f, "{}", self.ip)?;
        } else {
            write!(f, "{} ({}", self.name, self.ip)?;
            if let Some(host) = &self.host {
                write!(f, " on {host}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// What resolution reads: every endpoint and every pool, once.
pub struct Directory {
    endpoints: Vec<Endpoint>,
    network_pools: Vec<(String, Ipv4Net)>,
    pools: Vec<Ipv4Net>,
}

impl Directory {
    pub async fn load(store: &Store) -> Result<Self> {
        Ok(Directory {
            endpoints: store.endpoints().await?,
            network_pools: store
                .networks()
                .await?
                .into_iter()
                .map(|n| (n.id, n.pool))
                .collect(),
            pools: store
                .pools()
                .await?
                .into_iter()
                .filter_map(|p| p.value.v4())
                .collect(),
        })
    }

    #[cfg(test)]
    pub fn from_parts(endpoints: Vec<Endpoint>, pools: Vec<Ipv4Net>) -> Self {
        Directory {
            endpoints,
            network_pools: Vec::new(),
            pools,
        }
    }

    fn pool_of(&self, endpoint: Option<&Endpoint>, ip: Ipv4Addr) -> Option<Ipv4Net> {
        endpoint
            .and_then(|e| {
                self.network_pools
                    .iter()
                    .find(|(id, _)| *id == e.network_id)
                    .map(|(_, pool)| *pool)
            })
            .or_else(|| self.pools.iter().copied().find(|p| p.contains(&ip)))
    }

    fn target(&self, endpoint: &Endpoint) -> Target {
        Target {
            name: endpoint
                .container
                .clone()
                .unwrap_or_else(|| endpoint.ip.to_string()),
            ip: endpoint.ip,
            port: MYSQL_PORT,
            host: Some(endpoint.host.clone()),
            pool: self.pool_of(Some(endpoint), endpoint.ip),
        }
    }

    /// An address, a container name or an endpoint ID, from tabby's records.
    pub fn find(&self, spec: &str) -> Result<Option<Target>> {
        if let Ok(ip) = spec.parse::<Ipv4Addr>() {
            return Ok(Some(match self.endpoints.iter().find(|e| e.ip == ip) {
                Some(endpoint) => self.target(endpoint),
                None => Target {
                    name: ip.to_string(),
                    ip,
                    port: MYSQL_PORT,
                    host: None,
                    pool: self.pool_of(None, ip),
                },
            }));
        }
        let name = spec.trim_start_matches('/');
        let named: Vec<&Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| e.container.as_deref() == Some(name))
            .collect();
        match named[..] {
            [one] => return Ok(Some(self.target(one))),
            [_, _, ..] => {
                let places: Vec<String> = named
                    .iter()
                    .map(|e| format!("{} on {}", e.ip, e.host))
                    .collect();
                return Err(Error::Resolve(format!(
                    "container name {name} is ambiguous ({}): give its address",
                    places.join(", ")
                )));
            }
            [] => {}
        }
        Ok(self
            .endpoints
            .iter()
            .find(|e| spec.len() >= 12 && e.id.starts_with(spec))
            .map(|e| self.target(e)))
    }

    /// Like `find`, then asks the local Docker Engine about a container ID
    /// or a name tabby has not recorded yet.
    pub async fn resolve(&self, spec: &str, docker: Option<&DockerEngine>) -> Result<Target> {
        if let Some(target) = self.find(spec)? {
            return Ok(target);
        }
        if let Some(docker) = docker
            && let Some((name, ips)) = docker.container_addresses(spec).await?
        {
            if let Some(endpoint) = self.endpoints.iter().find(|e| ips.contains(&e.ip)) {
                let mut target = self.target(endpoint);
                target.name = name;
                return Ok(target);
            }
            return Err(Error::Resolve(format!(
                "container {name} has no address on a tabby network"
            )));
        }
        Err(Error::Resolve(format!(
            "no container or address {spec:?}: not a tabby endpoint on any host, nor a container of this host's Docker"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(host: &str, name: &str, ip: &str) -> Endpoint {
        Endpoint {
            container: Some(name.into()),
            ..Endpoint::for_test(&format!("{name}0123456789abcdef"), host, ip)
        }
    }

    fn directory() -> Directory {
        Directory::from_parts(
            vec![
                endpoint("h1", "mysql-master", "192.168.0.50"),
                endpoint("h2", "mysql-slave1", "192.168.0.51"),
                endpoint("h2", "twin", "192.168.0.60"),
                endpoint("h3", "twin", "192.168.0.61"),
            ],
            vec!["192.168.0.0/16".parse().unwrap()],
        )
    }

    #[test]
    fn names_addresses_and_endpoint_ids_resolve_across_hosts() {
        let d = directory();
        let t = d.find("mysql-slave1").unwrap().unwrap();
        assert_eq!(
            (t.ip.to_string(), t.host.as_deref()),
            ("192.168.0.51".into(), Some("h2"))
        );
        assert_eq!(t.pool, Some("192.168.0.0/16".parse().unwrap()));
        assert_eq!(t.to_string(), "mysql-slave1 (192.168.0.51 on h2)");
        let t = d.find("192.168.0.50").unwrap().unwrap();
        assert_eq!(t.name, "mysql-master");
        let t = d.find("192.168.7.7").unwrap().unwrap();
        assert_eq!((t.name.as_str(), t.host.is_none()), ("192.168.7.7", true));
        let t = d.find("mysql-master0123").unwrap().unwrap();
        assert_eq!(t.name, "mysql-master");
        assert!(d.find("nobody").unwrap().is_none());
    }

    #[test]
    fn a_name_on_two_hosts_is_refused_with_both_places() {
        let err = directory().find("twin").unwrap_err().to_string();
        assert!(
            err.contains("192.168.0.60 on h2") && err.contains("192.168.0.61 on h3"),
            "{err}"
        );
    }
}
