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
    assert!(
        !lab.sh("h1", "iptables -t nat -S TABBY-PREROUTING")
            .contains("DNAT")
    );
    assert!(
        !lab.sh("h2", "iptables -t nat -S TABBY-PREROUTING")
            .contains("DNAT")
    );
}
