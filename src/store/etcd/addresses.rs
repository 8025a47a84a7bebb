//! Which addresses the etcd endpoints are: no pool may contain them.

/// The IPv4 addresses of `http(s)://HOST:PORT` endpoints; a name is
/// resolved, and one that does not resolve adds nothing (connecting to it
/// fails on its own).
pub async fn ipv4_addresses(endpoints: &[String]) -> Vec<std::net::Ipv4Addr> {
    let mut out = Vec::new();
    for endpoint in endpoints {
        let rest = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or_default();
        let host_port = match authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_string(), p.parse().unwrap_or(2379)),
            _ => (authority.to_string(), 2379),
        };
        if let Ok(ip) = host_port.0.parse::<std::net::Ipv4Addr>() {
            out.push(ip);
        } else if let Ok(addrs) = tokio::net::lookup_host(host_port).await {
            out.extend(addrs.filter_map(|a| match a.ip() {
                std::net::IpAddr::V4(ip) => Some(ip),
                std::net::IpAddr::V6(_) => None,
            }));
        }
    }
    out
}
