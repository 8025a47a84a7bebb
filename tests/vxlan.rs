//! VXLAN encapsulation across a plain router (3 hosts on 2 segments: h1
//! and h3 on 198.18.0.0/24, h2 on 198.18.1.0/24; the tor routes the
//! segments but not the pools): cross-subnet tunnels only towards h2,
//! always tunnels everywhere, never is the control that cannot cross the
//! tor. Also: spoofed VXLAN is dropped, a host that leaves takes its
//! tunnel entries with it, switching modes leaves no stale route.

mod support;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use support::{Lab, eventually, shared_lab};

const POOL: &str = "198.19.32.0/20";
/// Each host's address, by lab host.
const HOSTS: [(&str, &str); 3] = [
    ("h1", "198.18.0.11"),
    ("h2", "198.18.1.12"),
    ("h3", "198.18.0.13"),
];

/// The tests switch the pool's mode: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Fixture {
    lab: Arc<Lab>,
    /// Container address by host.
    ips: Vec<(String, String)>,
}

fn fixture(mode: &str) -> (MutexGuard<'static, ()>, Fixture) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    static IPS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let lab = shared_lab(|| {
        let lab = Lab::up_with(3, &[("TABBY_LAB_SEGMENTS", "2")]);
        lab.sh("h1", &format!("tabby pool add {POOL} --vxlan never"));
        lab.sh("h1", &format!("tabby network create vx --subnet {POOL}"));
        let mut ips = Vec::new();
        for (host, _) in HOSTS {
            let name = format!("c{host}");
            lab.sh(
                host,
                &format!("docker run -d --name {name} --net vx tabby/busybox sleep 1d"),
            );
            ips.push((host.to_string(), lab.container_ip(host, &name)));
        }
        *IPS.lock().unwrap() = ips;
        lab
    });
    lab.sh("h1", &format!("tabby pool set {POOL} --vxlan {mode}"));
    let ips = IPS.lock().unwrap().clone();
    (guard, Fixture { lab, ips })
}

impl Fixture {
    fn ip(&self, host: &str) -> &str {
        &self.ips.iter().find(|(h, _)| h == host).unwrap().1
    }

    /// Each other host's block as `host` routes it: "eth0", "tunnel" or
    /// absent, once every route is as `want` says.
    fn wait_routes(&self, host: &str, want: &[(&str, Option<&str>)]) {
        eventually(
            Duration::from_secs(30),
            &format!("routes on {host}: {want:?}"),
            || {
                let routes = self.lab.sh(host, "ip route show proto 77");
                want.iter()
                    .all(|(peer, how)| {
                        let peer_ip = HOSTS.iter().find(|(h, _)| h == peer).unwrap().1;
                        let line = routes
                            .lines()
                            .find(|l| l.contains(&format!("via {peer_ip} ")) && l.contains("/26"));
                        match (how, line) {
                            (None, None) => true,
                            (Some("eth0"), Some(l)) => l.contains("dev eth0"),
                            (Some("tunnel"), Some(l)) => l.contains("dev tabby.vxlan onlink"),
                            _ => false,
                        }
                    })
                    .then_some(())
            },
        );
    }

    fn pings(&self, from: &str, to: &str) -> bool {
        self.lab.pings(from, &format!("c{from}"), self.ip(to))
    }
}

fn mtu_of_new_container(lab: &Lab) -> String {
    lab.sh(
        "h1",
        "docker run --rm --net vx tabby/busybox cat /sys/class/net/eth0/mtu",
    )
    .trim()
    .to_string()
}

/// Packets the tunnel device sent and received on `host` (0 without one).
fn tunnel_packets(lab: &Lab, host: &str) -> (u64, u64) {
    let out = lab.run(
        host,
        &["ip", "-j", "-s", "link", "show", "dev", "tabby.vxlan"],
    );
    let links: Vec<serde_json::Value> =
        serde_json::from_str(&support::stdout(&out)).unwrap_or_default();
    links.first().map_or((0, 0), |l| {
        let stat = |dir: &str| l["stats64"][dir]["packets"].as_u64().unwrap_or(0);
        (stat("tx"), stat("rx"))
    })
}

#[test]
fn cross_subnet_tunnels_only_towards_the_other_segment() {
    let (_serial, f) = fixture("cross-subnet");
    f.wait_routes("h1", &[("h2", Some("tunnel")), ("h3", Some("eth0"))]);
    f.wait_routes("h2", &[("h1", Some("tunnel")), ("h3", Some("tunnel"))]);
    assert!(f.pings("h1", "h2"), "h1 to h2 across the tor");
    assert!(f.pings("h2", "h3"), "h2 to h3 across the tor");
    // Same-segment traffic is not encapsulated: h1's tunnel counters do
    // not move while h1 pings h3, and do while it pings h2.
    let before = tunnel_packets(&f.lab, "h1");
    assert!(f.pings("h1", "h3"), "h1 to h3 on one segment");
    assert_eq!(tunnel_packets(&f.lab, "h1"), before);
    assert!(f.pings("h1", "h2"));
    let after = tunnel_packets(&f.lab, "h1");
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "{before:?} {after:?}"
    );
    // A container started on an encapsulating pool gets the tunnel's MTU.
    assert_eq!(mtu_of_new_container(&f.lab), "1450");
    // One neighbour and one FDB entry, for h2 only.
    let neighbours = f.lab.sh("h1", "ip neigh show dev tabby.vxlan");
    assert_eq!(neighbours.lines().count(), 1, "{neighbours}");
    assert!(neighbours.contains("198.18.1.12 lladdr") && neighbours.contains("PERMANENT"));
    let fdb = f.lab.sh("h1", "bridge fdb show dev tabby.vxlan");
    assert_eq!(fdb.lines().count(), 1, "{fdb}");
    assert!(fdb.contains("dst 198.18.1.12 self permanent"), "{fdb}");
}

#[test]
fn always_tunnels_every_host_and_never_cannot_cross_the_router() {
    let (_serial, f) = fixture("always");
    f.wait_routes("h1", &[("h2", Some("tunnel")), ("h3", Some("tunnel"))]);
    let before = tunnel_packets(&f.lab, "h1");
    assert!(f.pings("h1", "h3"));
    assert!(
        tunnel_packets(&f.lab, "h1").0 > before.0,
        "h1 to h3 tunnelled"
    );
    assert!(f.pings("h1", "h2"));

    // The control: routed as it is, h2 is no next hop on h1's segment
    // (the kernel refuses the route; the tor would not route a pool
    // anyway), so h2's block falls to the pool's blackhole, while h3 on
    // h1's segment stays reachable.
    f.lab
        .sh("h1", &format!("tabby pool set {POOL} --vxlan never"));
    f.wait_routes("h1", &[("h2", None), ("h3", Some("eth0"))]);
    eventually(Duration::from_secs(30), "no tunnel left on h1", || {
        (!f.lab.try_sh("h1", "ip link show tabby.vxlan")).then_some(())
    });
    assert!(f.pings("h1", "h3"), "the reachable pair");
    assert!(!f.pings("h1", "h2"), "the tor routes no pool");
    assert_eq!(
        mtu_of_new_container(&f.lab),
        "1500",
        "no tunnel, no smaller MTU"
    );
    // Back to cross-subnet: no stale route of either mode remains.
    f.lab
        .sh("h1", &format!("tabby pool set {POOL} --vxlan cross-subnet"));
    f.wait_routes("h1", &[("h2", Some("tunnel")), ("h3", Some("eth0"))]);
    let routes = f.lab.sh("h1", "ip route show proto 77");
    assert_eq!(routes.matches("via 198.18.1.12").count(), 1, "{routes}");
    assert_eq!(routes.matches("via 198.18.0.13").count(), 1, "{routes}");
    assert!(f.pings("h1", "h2"));
}

/// A VXLAN frame for h1's container, as a peer would send it: the VXLAN
/// header (VNI 4096), Ethernet to h1's tunnel MAC, then an ICMP echo.
fn vxlan_probe(mac: &str, src: &str, dst: &str) -> String {
    format!(
        r#"import socket, struct
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
icmp = struct.pack('!BBHHH', 8, 0, 0, 7, 1) + b'tabby-spoof'
icmp = icmp[:2] + struct.pack('!H', csum(icmp + b'\0')) + icmp[4:]
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0,
    socket.inet_aton('{src}'), socket.inet_aton('{dst}'))
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
eth = bytes.fromhex('{mac}'.replace(':', '')) + bytes.fromhex('0e0000000099') + b'\x08\x00'
vx = struct.pack('!II', 0x08000000, 4096 << 8)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5): s.sendto(vx + eth + ip + icmp, ('198.18.0.11', 4789))
"#
    )
}

#[test]
fn spoofed_vxlan_is_dropped_and_a_node_s_is_taken() {
    let (_serial, f) = fixture("cross-subnet");
    f.wait_routes("h1", &[("h2", Some("tunnel")), ("h3", Some("eth0"))]);
    let link: Vec<serde_json::Value> =
        serde_json::from_str(&f.lab.sh("h1", "ip -j link show dev tabby.vxlan")).unwrap();
    let mac = link[0]["address"].as_str().unwrap();
    let script = vxlan_probe(mac, f.ip("h2"), f.ip("h1"));
    let rx = || tunnel_packets(&f.lab, "h1").1;
    // From the lab client, not a node: dropped before decapsulation.
    let before = rx();
    let out = f
        .lab
        .command(&["client", "python3", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    // The same frames from h3, a node: decapsulated (the reachable pair).
    let from_node = f.lab.run("h3", &["python3", "-c", &script]);
    assert!(
        from_node.status.success(),
        "{}",
        support::stderr(&from_node)
    );
    eventually(Duration::from_secs(10), "h3's frames decapsulated", || {
        (rx() >= before + 5).then_some(())
    });
    assert_eq!(rx(), before + 5, "the client's frames must not be taken");
}

/// Starts h2's agent again even when an assertion fails, so the tests
/// after this one find every host up.
struct AgentBack<'a>(&'a Lab);

impl Drop for AgentBack<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.command(&["start", "h2", "agent"]).output();
        }
    }
}

#[test]
fn a_host_that_leaves_takes_its_tunnel_entries_with_it() {
    let (_serial, f) = fixture("cross-subnet");
    f.wait_routes("h1", &[("h2", Some("tunnel")), ("h3", Some("eth0"))]);
    let _back = AgentBack(&f.lab);
    f.lab.stop("h2", "agent");
    // Its liveness lease expires (the lab's node TTL is 3 s).
    eventually(Duration::from_secs(30), "h2's entries gone on h1", || {
        let neighbours = f.lab.sh("h1", "ip neigh show dev tabby.vxlan");
        let fdb = f.lab.sh("h1", "bridge fdb show dev tabby.vxlan");
        (neighbours.trim().is_empty() && fdb.trim().is_empty()).then_some(())
    });
    f.wait_routes("h1", &[("h2", None), ("h3", Some("eth0"))]);
    assert!(f.pings("h1", "h3"), "the rest still routes");
    f.lab.start("h2", "agent");
    f.wait_routes("h1", &[("h2", Some("tunnel")), ("h3", Some("eth0"))]);
    eventually(Duration::from_secs(30), "h2 reachable again", || {
        f.pings("h1", "h2").then_some(())
    });
}
