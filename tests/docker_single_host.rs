//! End to end with a real dockerd on one lab host: `docker network create
//! -d tabby`, `docker run --net`, routes, ping, --ip, removal, restarts.

mod support;

use std::time::Duration;

use support::{Lab, eventually, stderr};

const RUN: &str = "docker run -d --net n1 tabby/busybox sleep 600";

fn ip_of(lab: &Lab, container: &str) -> String {
    lab.sh(
        "h1",
        &format!("docker inspect -f '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}}{{{{end}}}}' {container}"),
    )
    .trim()
    .to_string()
}

fn pings(lab: &Lab, from: &str, to: &str) -> bool {
    lab.try_sh("h1", &format!("docker exec {from} ping -c 1 -W 2 {to}"))
}

#[test]
fn containers_get_32s_routes_and_reach_each_other() {
    let lab = Lab::up(1);
    lab.sh(
        "h1",
        "docker network create -d tabby --ipam-driver tabby --subnet 198.18.64.0/20 n1",
    );
    lab.sh("h1", &format!("{} ", RUN.replace("-d ", "-d --name c1 ")));
    lab.sh("h1", &RUN.replace("-d ", "-d --name c2 "));
    let (a, b) = (ip_of(&lab, "c1"), ip_of(&lab, "c2"));
    assert!(
        a.starts_with("198.18.") && b.starts_with("198.18.") && a != b,
        "{a} {b}"
    );

    // Inside: a /32, Calico's two routes and the pool through the gateway.
    let addr = lab.sh("h1", "docker exec c1 ip -4 -o addr show dev eth0");
    assert!(addr.contains(&format!("inet {a}/32")), "{addr}");
    let routes: Vec<String> = lab
        .sh("h1", "docker exec c1 ip route")
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        routes,
        [
            "default via 169.254.1.1 dev eth0",
            "169.254.1.1 dev eth0 scope link",
            "198.18.64.0/20 via 169.254.1.1 dev eth0"
        ]
    );

    // On the host: one /32 per container, down its veth.
    let host_routes = lab.sh("h1", "ip route show proto 77");
    for ip in [&a, &b] {
        assert!(
            host_routes
                .lines()
                .any(|l| l.starts_with(&format!("{ip} dev tabby")) && l.contains("scope link")),
            "{host_routes}"
        );
    }
    // One CI run (ec35dd5) lost the first ping here: a policy pass that had
    // read etcd before c2's Join programmed its older view after it. Fixed
    // and pinned by driver::tests::collisions; still waited for, as a pass can
    // lag a moment on a loaded machine.
    eventually(
        Duration::from_secs(10),
        "c1 and c2 reaching each other",
        || (pings(&lab, "c1", &b) && pings(&lab, "c2", &a)).then_some(()),
    );

    // The endpoint table names the containers (learned from the Engine API).
    let table = eventually(Duration::from_secs(15), "container names", || {
        let t = lab.sh("h1", "tabby endpoint show --detailed");
        (t.contains("c1") && t.contains("c2")).then_some(t)
    });
    assert!(
        table.contains(&format!("{a}/32")) && table.contains("joined"),
        "{table}"
    );

    // An explicit address, and a duplicate refused with its holder named.
    lab.sh("h1", &RUN.replace("-d ", "-d --name c3 --ip 198.18.70.5 "));
    assert_eq!(ip_of(&lab, "c3"), "198.18.70.5");
    assert!(pings(&lab, "c1", "198.18.70.5"));
    eventually(Duration::from_secs(15), "c3's name in its handle", || {
        lab.sh("h1", "tabby ipam show --ip 198.18.70.5")
            .contains("c3")
            .then_some(())
    });
    let dup = lab.run(
        "h1",
        &[
            "sh",
            "-c",
            &RUN.replace("-d ", "-d --name c4 --ip 198.18.70.5 "),
        ],
    );
    assert!(!dup.status.success());
    let msg = stderr(&dup);
    assert!(
        msg.contains("198.18.70.5 is already in use by container c3"),
        "{msg}"
    );
    lab.sh("h1", "docker rm -f c4 >/dev/null 2>&1 || true");

    // docker rm -f releases the address, the veth and the route.
    let veth_count = |lab: &Lab| {
        lab.sh("h1", "ip -o link show | grep -c ' tabby' || true")
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    assert_eq!(veth_count(&lab), 3);
    lab.sh("h1", "docker rm -f c3");
    assert!(
        lab.sh("h1", "tabby ipam show --ip 198.18.70.5 -o json")
            .contains("\"allocated\": false")
    );
    // Links go just after the calls answer (deletion waits on the kernel).
    eventually(Duration::from_secs(5), "c3's veth to go", || {
        (veth_count(&lab) == 2).then_some(())
    });
    assert!(
        !lab.sh("h1", "ip route show proto 77")
            .contains("198.18.70.5")
    );
    assert_eq!(
        lab.sh("h1", "tabby endpoint show -o json | grep -c '\"ip\"'")
            .trim(),
        "2"
    );

    // The network cannot be removed while used; then it can.
    assert!(!lab.try_sh("h1", "docker network rm n1"));
    lab.sh("h1", "docker rm -f c1 c2");
    lab.sh("h1", "docker network rm n1");
    let pools: serde_json::Value =
        serde_json::from_str(&lab.sh("h1", "tabby pool show -o json")).unwrap();
    assert_eq!(pools[0]["allocated"], 0, "every address released: {pools}");
    // Only the pool's and the block's blackholes stay.
    eventually(Duration::from_secs(5), "container routes to go", || {
        (!lab.sh("h1", "ip route show proto 77").contains("dev tabby")).then_some(())
    });
    let left = lab.routes("h1");
    assert!(left.contains("blackhole 198.18.64.0/20"), "{left:?}");
}

#[test]
fn restarting_the_agent_keeps_running_containers_connected_and_resyncs() {
    let lab = Lab::up(1);
    lab.sh(
        "h1",
        "docker network create -d tabby --ipam-driver tabby --subnet 198.18.64.0/20 n1",
    );
    lab.sh("h1", &RUN.replace("-d ", "-d --name c1 "));
    lab.sh("h1", &RUN.replace("-d ", "-d --name c2 "));
    let (a, b) = (ip_of(&lab, "c1"), ip_of(&lab, "c2"));
    let routes_before = lab.sh("h1", "ip route show proto 77");

    // Stray state the agent must remove at start: a veth marked as
    // tabby's and a route that no endpoint owns.
    lab.sh("h1", "ip link add tabbydeadbeef0 type veth peer name tbtmpdeadbeef0 && ip link set tabbydeadbeef0 up && ip link set tabbydeadbeef0 alias tabby:deadbeef0");
    lab.sh(
        "h1",
        "ip route add 198.18.79.1/32 dev tabbydeadbeef0 proto 77",
    );

    lab.stop("h1", "agent");
    // Traffic does not need the agent: the kernel state stays.
    if !pings(&lab, "c1", &b) {
        let again = pings(&lab, "c1", &b);
        let log = lab.agent_log("h1");
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        panic!(
            "c1 cannot reach {b} (again: {again})\nroutes:\n{}\nnft:\n{}\nagent log (newest first):\n{}",
            lab.sh("h1", "ip route"),
            lab.sh("h1", "nft list table inet tabby"),
            tail.join("\n")
        );
    }
    assert!(
        !lab.sh("h1", "tabby node show").contains(" up "),
        "a stopped agent shows as down"
    );
    lab.start("h1", "agent");
    assert!(lab.sh("h1", "tabby node show").contains(" up "));

    assert!(pings(&lab, "c1", &b) && pings(&lab, "c2", &a));
    assert!(
        !lab.try_sh("h1", "ip link show tabbydeadbeef0"),
        "stray veth removed"
    );
    assert_eq!(
        lab.sh("h1", "ip route show proto 77"),
        routes_before,
        "routes as before, stray one gone"
    );

    // A container started after the restart works alongside the old ones.
    lab.sh("h1", &RUN.replace("-d ", "-d --name c3 "));
    let c = ip_of(&lab, "c3");
    assert!(pings(&lab, "c3", &a) && pings(&lab, "c1", &c));
    lab.sh("h1", "docker rm -f c1 c2 c3");
}
