//! Exposed ports: `tabby expose` and `docker run -p`, reached from a
//! client namespace on the lab bridge that is not a tabby host.

mod support;

use std::time::Duration;

use support::{Lab, eventually};

fn listener(lab: &Lab, host: &str, name: &str, extra: &str) {
    lab.sh(
        host,
        &format!("docker run -d --name {name} {extra} --net db tabby/busybox nc -ll -p 3306 -e echo mysql-{name}"),
    );
    lab.sh(
        host,
        &format!("docker exec -d {name} nc -ll -p 3307 -e echo other-{name}"),
    );
}

#[test]
fn exposed_ports_follow_their_containers_and_docker_publish_works() {
    let lab = Lab::up(2);
    lab.sh(
        "h1",
        "tabby network create db --subnet 198.18.64.0/20 --profile db",
    );
    listener(&lab, "h1", "m1", "");

    // Nothing is reachable from outside until exposed.
    assert_eq!(lab.client_reads("198.18.0.11", 3306), None);
    eventually(Duration::from_secs(10), "m1's name to be known", || {
        lab.try_sh("h1", "tabby expose add 3306 --to m1")
            .then_some(())
    });
    // Agents apply it from their watch, within moments.
    eventually(Duration::from_secs(5), "the exposure to work", || {
        (lab.client_reads("198.18.0.11", 3306).as_deref() == Some("mysql-m1")).then_some(())
    });
    assert_eq!(
        lab.client_reads("198.18.0.11", 3307),
        None,
        "only the exposed port"
    );
    // Local clients on the host too (OUTPUT DNAT).
    assert!(
        lab.sh("h1", "echo | busybox nc -w 2 198.18.0.11 3306")
            .contains("mysql-m1")
    );
    // The profile still keeps the client off the container's other ports:
    // only DNATed connections pass the exposed port's allow.
    let shown = lab.sh("h2", "tabby expose show");
    assert!(
        shown.contains("| tcp   | 3306      | m1     | 3306 | h1"),
        "{shown}"
    );

    // It follows the container: gone with it, back with a new one of that name.
    lab.sh("h1", "docker rm -f m1");
    eventually(Duration::from_secs(5), "the exposure to stop", || {
        lab.client_reads("198.18.0.11", 3306)
            .is_none()
            .then_some(())
    });
    listener(&lab, "h1", "m1", "");
    eventually(Duration::from_secs(10), "the exposure to come back", || {
        (lab.client_reads("198.18.0.11", 3306).as_deref() == Some("mysql-m1")).then_some(())
    });

    // docker run -p on the other host works the same way.
    listener(&lab, "h2", "m2", "-p 13306:3306");
    assert_eq!(
        lab.client_reads("198.18.0.12", 13306).as_deref(),
        Some("mysql-m2")
    );
    assert_eq!(lab.client_reads("198.18.0.12", 3307), None);
    // From outside and from the host itself: one map element (or rule)
    // each, in PREROUTING and OUTPUT.
    assert_eq!(lab.fw_dnat_entries("h2"), 2);

    // Bad input changes nothing.
    for bad in [
        "tabby expose add 0 --to m1",
        "tabby expose add 3306 --to nobody",
        "tabby expose add 3306 --to m1 --proto sctp",
    ] {
        assert!(!lab.try_sh("h1", bad), "{bad} accepted");
    }
    let err = lab.run(
        "h1",
        &["sh", "-c", "tabby expose add 3307 --host-port 3306 --to m1"],
    );
    assert!(
        support::stderr(&err).contains("already exposed"),
        "{}",
        support::stderr(&err)
    );

    // Removal stops both.
    lab.sh("h1", "tabby expose remove 3306 --to m1");
    lab.sh("h2", "docker rm -f m2");
    eventually(Duration::from_secs(5), "both exposures to stop", || {
        let stopped = lab.client_reads("198.18.0.11", 3306).is_none()
            && lab.client_reads("198.18.0.12", 13306).is_none();
        stopped.then_some(())
    });
    for host in ["h1", "h2"] {
        assert_eq!(lab.fw_dnat_entries(host), 0, "{host} still DNATs");
    }
}

/// A busybox container on `db` answering `reply-<name>-<port>` on each port.
fn serving(lab: &Lab, name: &str, publish: &str, ports: &[u16]) {
    lab.sh(
        "h1",
        &format!("docker run -d --name {name} {publish} --net db tabby/busybox sleep 1000000"),
    );
    for port in ports {
        lab.sh(
            "h1",
            &format!("docker exec -d {name} nc -ll -p {port} -e echo reply-{name}-{port}"),
        );
    }
}

fn reads(got: Option<String>, want: &str) -> Option<()> {
    (got.as_deref() == Some(want)).then_some(())
}

#[test]
fn published_host_addresses_and_port_ranges_are_honoured() {
    let lab = Lab::up(1);
    lab.sh("h1", "tabby network create db --subnet 198.18.64.0/20");
    let wait = Duration::from_secs(15);

    // -p 127.0.0.1:…: the host itself only; its 0.0.0.0 neighbour from
    // the client too.
    serving(&lab, "lo1", "-p 127.0.0.1:13306:3306", &[3306]);
    serving(&lab, "any1", "-p 13307:3306", &[3306]);
    eventually(wait, "lo1 on the host's loopback", || {
        reads(lab.host_reads("h1", "127.0.0.1", 13306), "reply-lo1-3306")
    });
    eventually(wait, "any1 from the client", || {
        reads(lab.client_reads("198.18.0.11", 13307), "reply-any1-3306")
    });
    assert_eq!(
        lab.client_reads("198.18.0.11", 13306),
        None,
        "loopback only"
    );
    assert_eq!(
        lab.host_reads("h1", "198.18.0.11", 13306),
        None,
        "loopback only"
    );
    // 0.0.0.0 is every address, the loopback included.
    assert_eq!(
        lab.host_reads("h1", "127.0.0.1", 13307).as_deref(),
        Some("reply-any1-3306")
    );

    // -p A:…: that address only.
    serving(&lab, "addr1", "-p 198.18.0.11:13308:3306", &[3306]);
    eventually(wait, "addr1 on the lab address", || {
        reads(lab.client_reads("198.18.0.11", 13308), "reply-addr1-3306")
    });
    assert_eq!(
        lab.host_reads("h1", "127.0.0.1", 13308),
        None,
        "that address only"
    );

    // A range to a range: each port to its twin.
    serving(&lab, "rng", "-p 8000-8002:8000-8002", &[8000, 8001, 8002]);
    for port in [8000, 8001, 8002] {
        eventually(wait, "each port of the range", || {
            reads(
                lab.client_reads("198.18.0.11", port),
                &format!("reply-rng-{port}"),
            )
        });
    }
    // A range for one port: Docker sends HostPort..HostPortEnd and the
    // driver takes a free one, so two containers share the range.
    serving(&lab, "r1", "-p 8100-8101:80", &[80]);
    serving(&lab, "r2", "-p 8100-8101:80", &[80]);
    let got: std::collections::BTreeSet<String> = [8100, 8101]
        .into_iter()
        .map(|port| {
            eventually(wait, "both ports of the shared range", || {
                lab.client_reads("198.18.0.11", port)
            })
        })
        .collect();
    assert_eq!(
        got,
        ["reply-r1-80", "reply-r2-80"].map(String::from).into(),
        "one port each"
    );

    // tabby expose add --host-ip does the same.
    lab.sh(
        "h1",
        "tabby expose add 3306 --to any1 --host-port 13309 --host-ip 127.0.0.1",
    );
    eventually(wait, "the --host-ip exposure on loopback", || {
        reads(lab.host_reads("h1", "127.0.0.1", 13309), "reply-any1-3306")
    });
    assert_eq!(lab.client_reads("198.18.0.11", 13309), None);
    assert!(lab.sh("h1", "tabby expose show").contains("127.0.0.1"));
    lab.sh(
        "h1",
        "tabby expose remove 13309 --to any1 --host-ip 127.0.0.1",
    );
    eventually(wait, "the --host-ip exposure to stop", || {
        lab.host_reads("h1", "127.0.0.1", 13309)
            .is_none()
            .then_some(())
    });
    assert!(
        !lab.try_sh("h1", "tabby expose add 3306 --to any1 --host-ip 224.0.0.1"),
        "a multicast host address"
    );
    assert!(!lab.try_sh(
        "h1",
        "docker run -d --name s1 -p 9000:9000/sctp --net db tabby/busybox sleep 100"
    ));
}
