//! Exposed ports: `tabby expose …` and `docker run -p`. An exposure names
//! its target (container, endpoint or address), so it follows the
//! endpoint: gone with it, back when an endpoint of that name returns.

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Endpoint, Exposure, Protocol};
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("no tabby endpoint for {0}: start the container first")]
    NoTarget(String),
    #[error("{proto} port {port} on host {host} is already exposed to {other}")]
    Taken {
        proto: &'static str,
        port: u16,
        host: String,
        other: String,
    },
    #[error("no exposure of port {0} to {1}")]
    Missing(u16, String),
}

pub fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
    }
}

fn find_target<'a>(endpoints: &'a [Endpoint], probe: &Exposure) -> Option<&'a Endpoint> {
    endpoints.iter().find(|e| probe.matches(e))
}

/// Records an exposure after checking that its target exists and that its
/// host port is free on the target's host.
pub async fn add(store: &Store, exposure: Exposure) -> Result<Exposure, Error> {
    if exposure.port == 0 || exposure.host_port == 0 {
        return Err(Error::Invalid("ports run from 1 to 65535".into()));
    }
    if exposure.protocol == Protocol::Icmp {
        return Err(Error::Invalid(
            "only tcp and udp ports can be exposed".into(),
        ));
    }
    if let Some(iface) = &exposure.interface {
        let ok = !iface.is_empty()
            && iface.len() <= 15
            && iface
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
        if !ok {
            return Err(Error::Invalid(format!("bad interface name {iface:?}")));
        }
    }
    let endpoints = store.endpoints().await?;
    let target = find_target(&endpoints, &exposure)
        .ok_or_else(|| Error::NoTarget(exposure.target.clone()))?;
    for other in store.exposures().await? {
        let same_port =
            other.protocol == exposure.protocol && other.host_port == exposure.host_port;
        let same_host = find_target(&endpoints, &other).is_some_and(|e| e.host == target.host);
        if same_port && same_host && other.id() != exposure.id() {
            return Err(Error::Taken {
                proto: proto_name(exposure.protocol),
                port: exposure.host_port,
                host: target.host.clone(),
                other: other.target,
            });
        }
    }
    if !store.create_exposure(&exposure).await? {
        return Err(Error::Taken {
            proto: proto_name(exposure.protocol),
            port: exposure.host_port,
            host: target.host.clone(),
            other: exposure.target,
        });
    }
    Ok(exposure)
}

pub async fn remove(
    store: &Store,
    protocol: Protocol,
    host_port: u16,
    target: &str,
) -> Result<(), Error> {
    let id = Exposure {
        protocol,
        port: host_port,
        host_port,
        target: target.to_string(),
        interface: None,
        docker_endpoint: None,
    }
    .id();
    if !store.delete_exposure(&id).await? {
        return Err(Error::Missing(host_port, target.to_string()));
    }
    Ok(())
}

#[derive(Deserialize)]
struct PortBinding {
    #[serde(rename = "Proto")]
    proto: u8,
    #[serde(rename = "Port")]
    port: u16,
    #[serde(rename = "HostPort", default)]
    host_port: u16,
}

/// Docker's `com.docker.network.portmap` option as exposures of an
/// endpoint. A binding without a host port (`-p 3306`) uses the container
/// port: tabby has no port allocator.
pub fn from_portmap(endpoint_id: &str, portmap: &Value) -> Result<Vec<Exposure>, Error> {
    let bindings: Vec<PortBinding> = serde_json::from_value(portmap.clone())
        .map_err(|e| Error::Invalid(format!("bad port map: {e}")))?;
    bindings
        .into_iter()
        .map(|b| {
            let protocol = match b.proto {
                6 => Protocol::Tcp,
                17 => Protocol::Udp,
                other => {
                    return Err(Error::Invalid(format!(
                        "protocol {other} cannot be published by tabby"
                    )));
                }
            };
            Ok(Exposure {
                protocol,
                port: b.port,
                host_port: if b.host_port == 0 {
                    b.port
                } else {
                    b.host_port
                },
                target: endpoint_id.to_string(),
                interface: None,
                docker_endpoint: Some(endpoint_id.to_string()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_port_maps_become_exposures() {
        let map = serde_json::json!([
            {"Proto": 6, "IP": "", "Port": 3306, "HostIP": "", "HostPort": 13306, "HostPortEnd": 13306},
            {"Proto": 17, "IP": "", "Port": 53, "HostIP": "", "HostPort": 0, "HostPortEnd": 0}
        ]);
        let got = from_portmap("ep1", &map).unwrap();
        assert_eq!(
            (got[0].protocol, got[0].port, got[0].host_port),
            (Protocol::Tcp, 3306, 13306)
        );
        assert_eq!((got[1].protocol, got[1].host_port), (Protocol::Udp, 53));
        assert_eq!(got[0].docker_endpoint.as_deref(), Some("ep1"));
        assert!(from_portmap("e", &serde_json::json!([{"Proto": 132, "Port": 1}])).is_err());
    }
}
