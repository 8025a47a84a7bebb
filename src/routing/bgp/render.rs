//! BIRD 2 configuration for one host, after calico-node's: BIRD learns
//! tabby's own kernel routes (proto 77: this host's block blackholes and
//! its containers' /32s and /128s), announces the blocks and the single
//! addresses it holds outside them, and installs what peers announce
//! inside the pools. IPv6 rides the same sessions (an `ipv6` channel,
//! next hop: the host's IPv6 address) when the host has one.

use std::fmt::Write;

use ipnet::IpNet;

use super::{BgpView, Session, sessions};

/// The kernel protocol number tabby's own routes carry.
const TABBY_PROTO: u8 = crate::dataplane::netlink::RTPROT_TABBY;
const VXLAN_DEVICE: &str = crate::dataplane::VXLAN_DEVICE;

/// The whole configuration file; None when this host is not registered
/// yet (it has no router ID).
pub fn render(view: &BgpView) -> Option<String> {
    let me = view.nodes.iter().find(|n| n.hostname == view.host)?;
    let mut out = String::new();
    let hold = view.hold_time.max(3);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        r#"# Written by tabby agent for host {host} from etcd; changes are overwritten.
log stderr {{ info, remote, warning, error, auth, fatal, bug }};
router id {ip};
# After a restart, routes are announced once every peer is back or after
# this long, well before peers stop keeping them (the restart time).
graceful restart wait {recovery};
timeformat protocol iso long;

{functions}
# Interfaces, and their networks: next hops of peers' routes resolve
# through these and the kernel's other routes.
protocol device {{
  scan time 10;
}}

protocol direct tabby_direct {{
  ipv4;
  ipv6;
  interface "*";
}}

{kernels}
template bgp tabby_peer {{
  local {ip} as {local_as};
  multihop;
  hold time {hold};
  keepalive time {keepalive};
  graceful restart on;
  graceful restart time {hold};
  connect delay time 2;
  connect retry time 5;
  error wait time 5, 30;
  ipv4 {{
    gateway recursive;
    import filter tabby_import;
    export filter tabby_export;
  }};
{ipv6_channel}}}
"#,
        host = view.host,
        ip = me.ip,
        local_as = view.asn_of(view.host),
        keepalive = (hold / 3).max(1),
        recovery = (hold / 2).max(2),
        functions = functions(view.pools, view.own_blocks),
        kernels = kernels(),
        ipv6_channel = me.ip6.map(ipv6_channel).unwrap_or_default(),
    );
    for session in sessions(view) {
        out.push_str(&protocol(&session, view.asn_of(view.host)));
    }
    Some(out)
}

/// The kernel protocols, one per family: tabby's own routes in (to
/// announce), and the kernel's routes outside the pools (to resolve next
/// hops); BGP-learned routes out. Learned ones are preferred, so a stale
/// announcement never replaces a local route.
fn kernels() -> String {
    [("tabby_kernel", "ipv4"), ("tabby_kernel6", "ipv6")]
        .map(|(name, family)| {
            format!(
                r#"protocol kernel {name} {{
  learn;
  persist;
  scan time 10;
  graceful restart;
  {family} {{
    preference 250;
    import where krt_source = {TABBY_PROTO} || !tabby_pool_route();
    export where source = RTS_BGP;
  }};
}}
"#
            )
        })
        .join("\n")
}

/// The IPv6 channel of the session template: routes of IPv6 pools over
/// the IPv4 session, announced with this host's IPv6 address as next hop
/// (an IPv4 session has none of its own in that family).
fn ipv6_channel(ip6: std::net::Ipv6Addr) -> String {
    format!(
        "  ipv6 {{\n    gateway recursive;\n    next hop address {ip6};\n    import filter tabby_import;\n    export filter tabby_export;\n  }};\n"
    )
}

/// A BIRD prefix set of one family; "false" for no prefixes (BIRD has
/// no empty set), else `net ~ [ ... ]`.
fn in_set(nets: &[IpNet], v6: bool, suffix: &str) -> String {
    let items: Vec<String> = nets
        .iter()
        .filter(|n| n.addr().is_ipv6() == v6)
        .map(|n| format!("{n}{suffix}"))
        .collect();
    match items.is_empty() {
        true => "false".into(),
        false => format!("net ~ [ {} ]", items.join(", ")),
    }
}

/// A test on `net` that picks the set of its family: a set of the other
/// family is never matched against (BIRD would fail at run time).
fn by_family(nets: &[IpNet], suffix: &str) -> String {
    format!(
        "(net.type = NET_IP4 && {}) || (net.type = NET_IP6 && {})",
        in_set(nets, false, suffix),
        in_set(nets, true, suffix)
    )
}

fn functions(pools: &[IpNet], own: &[IpNet]) -> String {
    let in_pools = by_family(pools, "+");
    let is_pool = by_family(pools, "");
    let own_exact = by_family(own, "");
    let in_own = by_family(own, "+");
    format!(
        r#"# Inside a tabby pool, but not the pool itself (that stays a
# blackhole on every host).
function tabby_pool_route() {{
  if {is_pool} then return false;
  return {in_pools};
}}

# From peers: routes inside the pools only. Nothing else (a default
# route, a host route) is ever installed.
filter tabby_import {{
  if tabby_pool_route() then accept;
  reject;
}}

# To peers: this host's blocks, the single addresses it holds outside
# them, and what BGP brought (BIRD itself keeps iBGP routes from
# non-clients).
filter tabby_export {{
  if source = RTS_BGP then {{
    if tabby_pool_route() then accept;
    reject;
  }}
  if source != RTS_INHERIT then reject;
  if krt_source != {TABBY_PROTO} then reject;
  # Through the tunnel: another host's, never announced as this one's.
  if ifname = "{VXLAN_DEVICE}" then reject;
  if {own_exact} then accept;
  if {in_own} then reject;
  if (net.type = NET_IP4 && net.len = 32) || (net.type = NET_IP6 && net.len = 128) then {{
    if tabby_pool_route() then accept;
  }}
  reject;
}}
"#
    )
}

fn protocol(session: &Session, local_as: u32) -> String {
    let mut extra = String::new();
    if session.rr_client {
        extra.push_str("  rr client;\n");
    }
    if let Some(id) = session.cluster_id {
        let _ = writeln!(extra, "  rr cluster id {id};");
    }
    if session.peer_as != local_as && !matches!(session.kind, super::SessionKind::Mesh) {
        // Routes of this AS's other hosts come back through the router.
        extra.push_str("  allow local as;\n");
    }
    format!(
        "\nprotocol bgp {name} from tabby_peer {{\n  description \"tabby {kind}\";\n  neighbor {peer} as {asn};\n{extra}}}\n",
        name = session.protocol_name(),
        kind = session.kind.name(),
        peer = session.peer,
        asn = session.peer_as,
    )
}
