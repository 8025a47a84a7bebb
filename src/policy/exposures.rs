//! Exposed ports: `tabby expose …` and `docker run -p`. An exposure names
//! its target (container, endpoint or address), so it follows the
//! endpoint: gone with it, back when an endpoint of that name returns.

use std::net::{IpAddr, Ipv4Addr};

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
    if let Some(ip) = exposure.host_ip {
        if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
            return Err(Error::Invalid(format!(
                "{ip} is not a host address (leave the host address out for every address)"
            )));
        }
    }
    for other in store.exposures().await? {
        let same_port = other.protocol == exposure.protocol
            && other.host_port == exposure.host_port
            && addresses_overlap(other.host_ip, exposure.host_ip);
        let same_host = find_target(&endpoints, &other).is_some_and(|e| e.host == target.host);
        if same_port && same_host && other.id() != exposure.id() {
            return Err(Error::Taken {
                proto: exposure.protocol.name(),
                port: exposure.host_port,
                host: target.host.clone(),
                other: other.target,
            });
        }
    }
    if !store.create_exposure(&exposure).await? {
        return Err(Error::Taken {
            proto: exposure.protocol.name(),
            port: exposure.host_port,
            host: target.host.clone(),
            other: exposure.target,
        });
    }
    Ok(exposure)
}

/// Two host addresses share ports unless both are given and differ.
fn addresses_overlap(a: Option<Ipv4Addr>, b: Option<Ipv4Addr>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

pub async fn remove(
    store: &Store,
    protocol: Protocol,
    host_port: u16,
    host_ip: Option<Ipv4Addr>,
    target: &str,
) -> Result<(), Error> {
    let id = Exposure {
        protocol,
        port: host_port,
        host_port,
        target: target.to_string(),
        interface: None,
        docker_endpoint: None,
        host_ip,
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
    #[serde(rename = "HostIP", default)]
    host_ip: String,
    #[serde(rename = "HostPort", default)]
    host_port: u16,
    #[serde(rename = "HostPortEnd", default)]
    host_port_end: u16,
}

/// One `-p` binding: an exposure whose host port is any free one from
/// `exposure.host_port` to `last_host_port` (Docker's `-p 8000-8002:80`;
/// `-p 8000-8002:8000-8002` arrives as three single bindings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    pub exposure: Exposure,
    pub last_host_port: u16,
}

fn host_address(text: &str) -> Result<Option<Option<Ipv4Addr>>, Error> {
    match text.parse::<IpAddr>() {
        _ if text.is_empty() => Ok(Some(None)),
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => Ok(Some(None)),
        Ok(IpAddr::V4(ip)) => Ok(Some(Some(ip))),
        // dockerd adds a `::` twin of each binding when IPv6 is on: the
        // IPv4 one covers it, tabby's network has no IPv6.
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => Ok(None),
        _ => Err(Error::Invalid(format!(
            "host address {text:?} cannot be published by tabby (IPv4 only)"
        ))),
    }
}

/// Docker's `com.docker.network.portmap` option as port requests of an
/// endpoint. A binding without a host port (`-p 3306`) uses the container
/// port: tabby has no port allocator.
pub fn from_portmap(endpoint_id: &str, portmap: &Value) -> Result<Vec<PortRequest>, Error> {
    let bindings: Vec<PortBinding> = serde_json::from_value(portmap.clone())
        .map_err(|e| Error::Invalid(format!("bad port map: {e}")))?;
    let mut requests = Vec::new();
    for b in bindings {
        let protocol = match b.proto {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            other => {
                return Err(Error::Invalid(format!(
                    "protocol {other} cannot be published by tabby"
                )));
            }
        };
        let Some(host_ip) = host_address(&b.host_ip)? else {
            continue;
        };
        let host_port = if b.host_port == 0 {
            b.port
        } else {
            b.host_port
        };
        if b.host_port_end != 0 && b.host_port_end < host_port {
            return Err(Error::Invalid(format!(
                "host port range {host_port}-{} is empty",
                b.host_port_end
            )));
        }
        requests.push(PortRequest {
            exposure: Exposure {
                protocol,
                port: b.port,
                host_port,
                target: endpoint_id.to_string(),
                interface: None,
                docker_endpoint: Some(endpoint_id.to_string()),
                host_ip,
            },
            last_host_port: b.host_port_end.max(host_port),
        });
    }
    Ok(requests)
}

/// Whether `x` already serves `request` (Docker programs an endpoint more
/// than once).
fn serves(x: &Exposure, request: &PortRequest) -> bool {
    let want = &request.exposure;
    x.docker_endpoint == want.docker_endpoint
        && x.protocol == want.protocol
        && x.port == want.port
        && x.host_ip == want.host_ip
        && (want.host_port..=request.last_host_port).contains(&x.host_port)
}

/// Records a port request: the first host port of its range that is free
/// on the endpoint's host. A request already recorded is a no-op.
pub async fn publish(store: &Store, request: PortRequest) -> Result<Option<Exposure>, Error> {
    if store.exposures().await?.iter().any(|x| serves(x, &request)) {
        return Ok(None);
    }
    let mut last_err = None;
    for host_port in request.exposure.host_port..=request.last_host_port {
        let exposure = Exposure {
            host_port,
            ..request.exposure.clone()
        };
        match add(store, exposure).await {
            Ok(x) => return Ok(Some(x)),
            Err(err @ Error::Taken { .. }) => last_err = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last_err.expect("a range holds at least one port"))
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
        let x = &got[0].exposure;
        assert_eq!(
            (x.protocol, x.port, x.host_port),
            (Protocol::Tcp, 3306, 13306)
        );
        assert_eq!(got[0].last_host_port, 13306);
        assert_eq!(x.host_ip, None);
        assert_eq!(
            (got[1].exposure.protocol, got[1].exposure.host_port),
            (Protocol::Udp, 53)
        );
        assert_eq!(x.docker_endpoint.as_deref(), Some("ep1"));
        assert!(from_portmap("e", &serde_json::json!([{"Proto": 132, "Port": 1}])).is_err());
    }

    #[test]
    fn host_addresses_and_ranges_are_kept() {
        let map = serde_json::json!([
            {"Proto": 6, "Port": 3306, "HostIP": "127.0.0.1", "HostPort": 13306, "HostPortEnd": 13306},
            {"Proto": 6, "Port": 80, "HostIP": "0.0.0.0", "HostPort": 8000, "HostPortEnd": 8002},
            {"Proto": 6, "Port": 80, "HostIP": "::", "HostPort": 8000, "HostPortEnd": 8002}
        ]);
        let got = from_portmap("ep1", &map).unwrap();
        assert_eq!(got.len(), 2, "the IPv6 twin is covered by the IPv4 binding");
        assert_eq!(got[0].exposure.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(got[0].exposure.id(), "tcp-127.0.0.1:13306-ep1");
        assert_eq!(
            (got[1].exposure.host_ip, got[1].exposure.host_port),
            (None, 8000)
        );
        assert_eq!(got[1].last_host_port, 8002);
        for bad in [
            serde_json::json!([{"Proto": 6, "Port": 1, "HostIP": "fd00::1", "HostPort": 1}]),
            serde_json::json!([{"Proto": 6, "Port": 1, "HostIP": "nope", "HostPort": 1}]),
            serde_json::json!([{"Proto": 6, "Port": 1, "HostPort": 9, "HostPortEnd": 8}]),
        ] {
            assert!(from_portmap("e", &bad).is_err(), "{bad}");
        }
        assert!(addresses_overlap(None, Some(Ipv4Addr::LOCALHOST)));
        assert!(!addresses_overlap(
            Some(Ipv4Addr::LOCALHOST),
            Some(Ipv4Addr::new(198, 18, 0, 11))
        ));
    }

    #[test]
    fn old_records_without_a_host_address_still_decode() {
        let old = r#"{"protocol":"tcp","port":3306,"host_port":13306,"target":"m1"}"#;
        let x: Exposure = serde_json::from_str(old).unwrap();
        assert_eq!((x.host_ip, x.id().as_str()), (None, "tcp-13306-m1"));
    }
}
