//! BGP routing through BIRD on one L2 segment (3 hosts, real BIRD, real
//! dockerd): the node-to-node mesh, a route reflector, restarts of BIRD
//! and of the agent without a route flapping.

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use support::{Lab, eventually, shared_lab};

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

/// The tests change cluster-wide BGP settings: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Fixture {
    lab: Arc<Lab>,
    /// Container name -> (host, address).
    containers: Vec<(String, String, String)>,
}

fn host_ip(host: &str) -> String {
    format!("198.18.0.1{}", &host[1..])
}

fn fixture() -> (MutexGuard<'static, ()>, Fixture) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    static CONTAINERS: Mutex<Vec<(String, String, String)>> = Mutex::new(Vec::new());
    let lab = shared_lab(|| {
        let lab = Lab::up_with(
            3,
            &[("TABBY_LAB_ROUTING", "bgp"), ("TABBY_BGP_HOLD_TIME", "10")],
        );
        lab.sh("h1", "tabby network create n1 --subnet 198.19.16.0/20");
        let mut made = Vec::new();
        for host in HOSTS {
            let name = format!("c{host}");
            lab.sh(
                host,
                &format!("docker run -d --name {name} --net n1 tabby/busybox sleep 1d"),
            );
            made.push((
                name.clone(),
                host.to_string(),
                lab.container_ip(host, &name),
            ));
        }
        // h2 holds an address of h1's block: a borrowed /32.
        let h1_ip: std::net::Ipv4Addr = made[0].2.parse().unwrap();
        let borrowed = std::net::Ipv4Addr::from(u32::from(h1_ip) + 7).to_string();
        lab.sh(
            "h2",
            &format!("docker run -d --name b2 --net n1 --ip {borrowed} tabby/busybox sleep 1d"),
        );
        made.push(("b2".into(), "h2".into(), borrowed));
        *CONTAINERS.lock().unwrap() = made;
        lab
    });
    let containers = CONTAINERS.lock().unwrap().clone();
    (guard, Fixture { lab, containers })
}

/// IPv4 blocks and their owners, from `tabby ipam show -o json`.
fn blocks(lab: &Lab) -> Vec<(ipnet::Ipv4Net, String)> {
    let ipam: Value = serde_json::from_str(&lab.sh("h1", "tabby ipam show -o json")).unwrap();
    ipam.as_object()
        .unwrap()
        .iter()
        .filter_map(|(cidr, b)| {
            Some((
                cidr.parse().ok()?,
                b["affinity"].as_str().unwrap().to_string(),
            ))
        })
        .collect()
}

/// What BIRD must have installed on `host`: other hosts' blocks via their
/// owner, and addresses held outside their block's owner via the holder.
fn expected_bird_routes(f: &Fixture, host: &str) -> BTreeSet<String> {
    let blocks = blocks(&f.lab);
    let mut want: BTreeSet<String> = blocks
        .iter()
        .filter(|(_, owner)| owner != host)
        .map(|(cidr, owner)| format!("{cidr} via {} dev eth0 metric 32", host_ip(owner)))
        .collect();
    for (_, holder, ip) in &f.containers {
        let ip_addr: std::net::Ipv4Addr = ip.parse().unwrap();
        let owner = &blocks.iter().find(|(c, _)| c.contains(&ip_addr)).unwrap().1;
        if owner != holder && holder != host {
            want.insert(format!("{ip} via {} dev eth0 metric 32", host_ip(holder)));
        }
    }
    want
}

fn bird_routes(lab: &Lab, host: &str) -> BTreeSet<String> {
    lab.sh(host, "ip route show proto bird")
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn wait_bird_routes(f: &Fixture, timeout: Duration) {
    for host in HOSTS {
        let want = expected_bird_routes(f, host);
        eventually(
            timeout,
            &format!("BIRD's routes on {host}: {want:?}"),
            || (bird_routes(&f.lab, host) == want).then_some(()),
        );
    }
}

/// `tabby bgp status -o json` on `host`.
fn sessions(lab: &Lab, host: &str) -> Vec<Value> {
    let out = lab.run(host, &["tabby", "bgp", "status", "-o", "json"]);
    serde_json::from_str(&support::stdout(&out)).unwrap_or_default()
}

fn established(lab: &Lab, host: &str, kind: &str) -> usize {
    sessions(lab, host)
        .iter()
        .filter(|s| {
            s["type"] == kind && s["info"].as_str().unwrap_or("").starts_with("Established")
        })
        .count()
}

fn reachable_matrix(f: &Fixture) {
    for (name, host, ip) in &f.containers {
        let others: Vec<String> = f
            .containers
            .iter()
            .filter(|c| &c.2 != ip)
            .map(|c| c.2.clone())
            .collect();
        let failed = f.lab.unreachable(host, name, &others);
        assert!(
            failed.is_empty(),
            "{name} on {host} cannot reach {failed:?}"
        );
    }
}

/// IPv6 rides the same sessions: each host claims an IPv6 block through
/// Docker's IPAM call, and BIRD installs the other hosts' blocks via their
/// IPv6 addresses; node show counts the sessions whose IPv6 channel is up.
#[test]
fn ipv6_routes_come_from_bird_over_the_same_sessions() {
    const POOL6: &str = "2001:2:0:2000::/56";
    let (_serial, f) = fixture();
    let lab = &f.lab;
    lab.sh("h1", &format!("tabby pool add {POOL6}"));
    let mut claimed = Vec::new();
    for host in HOSTS {
        let body = serde_json::json!({"PoolID": POOL6, "Address": ""});
        let got = support::http::post_ok(&lab.socket(host), "/IpamDriver.RequestAddress", &body);
        let address = got["Address"].as_str().unwrap().to_string();
        let ip: std::net::IpAddr = address.trim_end_matches("/128").parse().unwrap();
        claimed.push((host, address, ipnet::IpNet::new(ip, 122).unwrap().trunc()));
    }
    for (i, host) in HOSTS.iter().enumerate() {
        let want: BTreeSet<String> = claimed
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, (_, _, block))| format!("{block} via 2001:2::{} dev eth0", 11 + j))
            .collect();
        eventually(
            Duration::from_secs(30),
            &format!("IPv6 routes from BIRD on {host}: {want:?}"),
            || {
                let got: BTreeSet<String> = lab
                    .sh(host, "ip -6 route show proto bird")
                    .lines()
                    .map(|l| l.split(" metric").next().unwrap().trim().to_string())
                    .collect();
                (got == want).then_some(())
            },
        );
    }
    eventually(
        Duration::from_secs(40),
        "2/2 IPv6 peers on every node",
        || {
            let nodes: Vec<Value> =
                serde_json::from_str(&lab.sh("h3", "tabby node show -o json")).unwrap_or_default();
            let good = |n: &Value| n["bgp_peers_v6"]["established"] == 2;
            (nodes.len() == 3 && nodes.iter().all(good)).then_some(())
        },
    );
    for (host, address, _) in &claimed {
        let body = serde_json::json!({"PoolID": POOL6, "Address": address});
        support::http::post_ok(&lab.socket(host), "/IpamDriver.ReleaseAddress", &body);
    }
    lab.sh("h1", &format!("tabby pool remove {POOL6}"));
    for host in HOSTS {
        eventually(Duration::from_secs(30), "no IPv6 routes from BIRD", || {
            lab.sh(host, "ip -6 route show proto bird")
                .trim()
                .is_empty()
                .then_some(())
        });
    }
}

#[test]
fn full_mesh_routes_come_from_bird_and_every_container_reaches_every_other() {
    let (_serial, f) = fixture();
    wait_bird_routes(&f, Duration::from_secs(30));
    for host in HOSTS {
        // Nothing of the agent's in BIRD's place: no route via another host.
        let own = f.lab.routes(host);
        assert!(!own.iter().any(|r| r.contains(" via ")), "{host}: {own:?}");
        eventually(Duration::from_secs(20), "2 mesh sessions", || {
            (established(&f.lab, host, "mesh") == 2).then_some(())
        });
    }
    reachable_matrix(&f);
    // Every agent reports its sessions, and the AS it inherits. Read from
    // the JSON: the table's BLOCKS column can hold "2/2" too (x.y.z.192/26).
    // Generous: each probe runs `tabby node show`, slow on a loaded host.
    let mut last = String::new();
    eventually(
        Duration::from_secs(40),
        "node show with 2/2 BGP peers and AS 64512 inherited on every node",
        || {
            last = f.lab.sh("h3", "tabby node show -o json");
            let nodes: Vec<Value> = serde_json::from_str(&last).unwrap_or_default();
            let good = |n: &Value| {
                n["bgp_peers"]["established"] == 2
                    && n["bgp_peers"]["configured"] == 2
                    && n["as"] == 64512
                    && n["as_inherited"] == true
            };
            (nodes.len() == 3 && nodes.iter().all(good)).then_some(())
        },
    );
    let table = f.lab.sh("h3", "tabby node show");
    assert!(table.contains("64512 (inherited)"), "{table}\n{last}");
}

#[test]
fn with_a_reflector_and_no_mesh_every_host_learns_every_block_through_it() {
    let (_serial, f) = fixture();
    let lab = &f.lab;
    lab.sh(
        "h1",
        "tabby bgp mesh off && tabby node h1 bgp route-reflector --cluster-id 1.0.0.1",
    );
    for host in ["h2", "h3"] {
        eventually(Duration::from_secs(30), "one reflector session", || {
            let all = sessions(lab, host);
            (all.len() == 1 && established(lab, host, "reflector") == 1).then_some(())
        });
    }
    eventually(Duration::from_secs(20), "two clients on h1", || {
        (established(lab, "h1", "reflector") == 2).then_some(())
    });
    wait_bird_routes(&f, Duration::from_secs(30));
    // h3's block reaches h2 from h1's session, with h3 as next hop.
    let h3_block = blocks(lab).into_iter().find(|(_, o)| o == "h3").unwrap().0;
    let learned = lab.sh(
        "h2",
        &format!("birdc -s $TABBY_BIRD_DIR/bird.ctl show route {h3_block} all"),
    );
    assert!(learned.contains("rr_198_18_0_11"), "{learned}");
    assert!(learned.contains("BGP.next_hop: 198.18.0.13"), "{learned}");
    reachable_matrix(&f);
    lab.sh(
        "h1",
        "tabby node h1 bgp route-reflector --off && tabby bgp mesh on",
    );
    for host in HOSTS {
        eventually(Duration::from_secs(30), "the mesh back", || {
            (established(lab, host, "mesh") == 2).then_some(())
        });
    }
    wait_bird_routes(&f, Duration::from_secs(30));
}

/// Whether `host`'s BIRD has finished graceful restart recovery: a
/// second restart before that makes peers drop its routes (RFC 4724).
fn recovered(lab: &Lab, host: &str) -> bool {
    let status = lab.sh(host, "birdc -s $TABBY_BIRD_DIR/bird.ctl show status");
    status.contains("Daemon is up") && !status.contains("recovery in progress")
}

fn bird_pid(lab: &Lab, host: &str) -> Option<String> {
    std::fs::read_to_string(lab.dir().join(host).join("bird/bird.pid"))
        .ok()
        .map(|p| p.trim().to_string())
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
}

#[test]
fn bird_killed_or_agent_restarted_no_route_flaps() {
    let (_serial, f) = fixture();
    let lab = &f.lab;
    wait_bird_routes(&f, Duration::from_secs(30));
    for host in HOSTS {
        eventually(Duration::from_secs(20), "the mesh", || {
            (established(lab, host, "mesh") == 2).then_some(())
        });
    }
    let monitors: Vec<_> = HOSTS
        .iter()
        .map(|h| {
            let log = std::fs::File::create(lab.dir().join(format!("{h}-monitor.txt"))).unwrap();
            lab.command(&["exec", h, "ip", "monitor", "route"])
                .stdout(log)
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    let old = bird_pid(lab, "h2").expect("BIRD runs on h2");
    lab.sh("h2", &format!("kill -KILL {old}"));
    eventually(Duration::from_secs(15), "BIRD started again", || {
        bird_pid(lab, "h2").filter(|p| *p != old)
    });
    eventually(Duration::from_secs(30), "h2's sessions back", || {
        (established(lab, "h2", "mesh") == 2).then_some(())
    });
    wait_bird_routes(&f, Duration::from_secs(10));
    eventually(Duration::from_secs(10), "h2's recovery", || {
        recovered(lab, "h2").then_some(())
    });

    lab.restart_agent("h2", &[]);
    eventually(
        Duration::from_secs(30),
        "h2's sessions after the restart",
        || (established(lab, "h2", "mesh") == 2).then_some(()),
    );
    wait_bird_routes(&f, Duration::from_secs(10));
    eventually(Duration::from_secs(10), "h2's recovery", || {
        recovered(lab, "h2").then_some(())
    });

    // The monitors see changes: a new borrowed /32 on h3 shows up on h1.
    let h1_ip: std::net::Ipv4Addr = f.containers[0].2.parse().unwrap();
    let probe = std::net::Ipv4Addr::from(u32::from(h1_ip) + 9).to_string();
    lab.sh(
        "h3",
        &format!("docker run -d --name probe --net n1 --ip {probe} tabby/busybox sleep 1d"),
    );
    let log_h1 = lab.dir().join("h1-monitor.txt");
    eventually(
        Duration::from_secs(10),
        "the probe's route in h1's monitor",
        || {
            std::fs::read_to_string(&log_h1)
                .unwrap()
                .contains(&probe)
                .then_some(())
        },
    );
    for mut monitor in monitors {
        let _ = monitor.kill();
        let _ = monitor.wait();
    }
    for host in HOSTS {
        let seen = std::fs::read_to_string(lab.dir().join(format!("{host}-monitor.txt"))).unwrap();
        let withdrawn: Vec<&str> = seen.lines().filter(|l| l.starts_with("Deleted")).collect();
        assert!(
            withdrawn.is_empty(),
            "{host} saw routes withdrawn: {withdrawn:?}"
        );
    }
    lab.sh("h3", "docker rm -f probe");
}
