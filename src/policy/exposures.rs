//! Exposed ports: `tabby expose …` and `docker run -p`. An exposure names
//! its target (container, endpoint or address), so it follows the
//! endpoint: gone with it, back when an endpoint of that name returns.

use std::net::IpAddr;

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

/// The endpoint's addresses an exposure's connections go to: one of each
/// family its host address admits (none admits both; IPv6 only where the
/// endpoint has an IPv6 address).
pub fn addresses_reached(x: &Exposure, ep: &Endpoint) -> Vec<IpAddr> {
    let admits = |v6: bool| x.host_ip.is_none_or(|ip| ip.is_ipv6() == v6);
    let v4 = admits(false).then_some(IpAddr::V4(ep.ip));
    let v6 = ep.ip6.filter(|_| admits(true)).map(IpAddr::V6);
    v4.into_iter().chain(v6).collect()
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
        check_host_address(ip, target)?;
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

/// A host address an exposure can be caught on, for this endpoint: an
/// IPv6 one needs an IPv6 address on the endpoint to go to.
fn check_host_address(ip: IpAddr, target: &Endpoint) -> Result<(), Error> {
    let refuse = |why: &str| Err(Error::Invalid(format!("host address {ip}: {why}")));
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() => {
            refuse("not a host address (leave it out for every address)")
        }
        IpAddr::V6(_) if target.ip6.is_none() => refuse(&format!(
            "{} has no IPv6 address (its network is IPv4 only)",
            target.container.as_deref().unwrap_or(&target.id)
        )),
        // IPv6 has no `route_localnet`: a connection from ::1 cannot be
        // sent on to a container.
        IpAddr::V6(v6) if v6.is_loopback() => {
            refuse("IPv6 loopback cannot be forwarded (use 127.0.0.1)")
        }
        IpAddr::V6(v6) if v6.is_multicast() || v6.is_unicast_link_local() => {
            refuse("not an address every packet to this host can carry")
        }
        _ => Ok(()),
    }
}

/// Two host addresses share ports unless both are given and differ (`::`
/// is every IPv6 address).
fn addresses_overlap(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    let covers =
        |a: IpAddr, b: IpAddr| a == b || (a.is_unspecified() && a.is_ipv6() == b.is_ipv6());
    match (a, b) {
        (Some(a), Some(b)) => covers(a, b) || covers(b, a),
        _ => true,
    }
}

pub async fn remove(
    store: &Store,
    protocol: Protocol,
    host_port: u16,
    host_ip: Option<IpAddr>,
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

/// A binding's host address: none for every address of both families
/// (empty, `0.0.0.0`, as Docker's bridge reads them).
fn host_address(text: &str) -> Result<Option<IpAddr>, Error> {
    match text.parse::<IpAddr>() {
        _ if text.is_empty() => Ok(None),
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => Ok(None),
        Ok(ip) => Ok(Some(ip)),
        Err(_) => Err(Error::Invalid(format!("bad host address {text:?}"))),
    }
}

/// Whether `b` is the `::` twin dockerd adds beside a binding on every
/// address: that binding already covers IPv6.
fn is_ipv6_twin(b: &PortBinding, all: &[PortBinding]) -> bool {
    let every = |text: &str| host_address(text).is_ok_and(|ip| ip.is_none());
    b.host_ip.parse() == Ok(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
        && all.iter().any(|o| {
            every(&o.host_ip)
                && (o.proto, o.port, o.host_port, o.host_port_end)
                    == (b.proto, b.port, b.host_port, b.host_port_end)
        })
}

/// Docker's `com.docker.network.portmap` option as port requests of an
/// endpoint. A binding without a host port (`-p 3306`) uses the container
/// port: tabby has no port allocator.
pub fn from_portmap(endpoint_id: &str, portmap: &Value) -> Result<Vec<PortRequest>, Error> {
    let bindings: Vec<PortBinding> = serde_json::from_value(portmap.clone())
        .map_err(|e| Error::Invalid(format!("bad port map: {e}")))?;
    let mut requests = Vec::new();
    for b in bindings.iter().filter(|b| !is_ipv6_twin(b, &bindings)) {
        let protocol = match b.proto {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            other => {
                return Err(Error::Invalid(format!(
                    "protocol {other} cannot be published by tabby"
                )));
            }
        };
        let host_ip = host_address(&b.host_ip)?;
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
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        assert_eq!(got[0].exposure.host_ip, ip("127.0.0.1"));
        assert_eq!(got[0].exposure.id(), "tcp-127.0.0.1:13306-ep1");
        assert_eq!(
            (got[1].exposure.host_ip, got[1].exposure.host_port),
            (None, 8000)
        );
        assert_eq!(got[1].last_host_port, 8002);
        for bad in [
            serde_json::json!([{"Proto": 6, "Port": 1, "HostIP": "nope", "HostPort": 1}]),
            serde_json::json!([{"Proto": 6, "Port": 1, "HostPort": 9, "HostPortEnd": 8}]),
        ] {
            assert!(from_portmap("e", &bad).is_err(), "{bad}");
        }
        assert!(addresses_overlap(None, ip("127.0.0.1")));
        assert!(!addresses_overlap(ip("127.0.0.1"), ip("198.18.0.11")));
        // `::` is every IPv6 address, and no IPv4 one.
        assert!(addresses_overlap(ip("::"), ip("2001:2::11")));
        assert!(addresses_overlap(ip("2001:2::11"), ip("::")));
        assert!(!addresses_overlap(ip("::"), ip("198.18.0.11")));
    }

    #[test]
    fn an_ipv6_binding_alone_is_kept_and_its_id_brackets_the_address() {
        let map = serde_json::json!([
            {"Proto": 6, "Port": 80, "HostIP": "::", "HostPort": 8080, "HostPortEnd": 8080},
            {"Proto": 17, "Port": 53, "HostIP": "2001:2::11", "HostPort": 53, "HostPortEnd": 53}
        ]);
        let got = from_portmap("ep1", &map).unwrap();
        let ips: Vec<_> = got.iter().map(|r| r.exposure.host_ip).collect();
        assert_eq!(
            ips,
            [
                Some("::".parse().unwrap()),
                Some("2001:2::11".parse().unwrap())
            ]
        );
        assert_eq!(got[1].exposure.id(), "udp-[2001:2::11]:53-ep1");
    }

    #[test]
    fn ipv6_host_addresses_need_an_ipv6_endpoint() {
        let mut ep: Endpoint = serde_json::from_value(serde_json::json!({
            "id": "e1", "network_id": "n", "host": "h1", "ip": "198.18.64.2",
            "veth": "tabbye1", "state": "joined", "created": "2026-12-07T00:00:00Z"
        }))
        .unwrap();
        let check = |ip: &str, ep: &Endpoint| check_host_address(ip.parse().unwrap(), ep);
        assert!(check("2001:2::11", &ep).is_err(), "no IPv6 on the endpoint");
        assert!(check("198.18.0.11", &ep).is_ok());
        ep.ip6 = Some("2001:2:0:1000::2".parse().unwrap());
        assert!(check("2001:2::11", &ep).is_ok());
        assert!(check("::", &ep).is_ok());
        for bad in ["::1", "fe80::1", "ff02::1", "0.0.0.0", "224.0.0.1"] {
            assert!(check(bad, &ep).is_err(), "{bad}");
        }
    }

    #[test]
    fn old_records_without_a_host_address_still_decode() {
        let old = r#"{"protocol":"tcp","port":3306,"host_port":13306,"target":"m1"}"#;
        let x: Exposure = serde_json::from_str(old).unwrap();
        assert_eq!((x.host_ip, x.id().as_str()), (None, "tcp-13306-m1"));
    }
}
