//! Profiles, tags and rules enforced by the firewall backend in use
//! (`TABBY_FIREWALL`; scripts/test runs this on both) across three hosts: isolation, a port opened by rule, tags changing only sets,
//! anti-spoofing, and no gap while an agent restarts.

mod support;

use std::time::Duration;

use support::{Lab, eventually};

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

fn setup() -> (Lab, String, String, String) {
    let lab = Lab::up(3);
    lab.sh("h1", "tabby pool add 198.18.64.0/20");
    for host in HOSTS {
        for p in ["A", "B"] {
            let net = p.to_lowercase();
            lab.sh(
                host,
                &format!("docker network create -d tabby --ipam-driver tabby --subnet 198.18.64.0/20 --opt tabby.profile={p} n{net}"),
            );
        }
    }
    lab.sh(
        "h1",
        "docker run -d --name a1 --cap-add NET_ADMIN --net na tabby/busybox sleep 3600",
    );
    lab.sh(
        "h2",
        "docker run -d --name a2 --net na tabby/busybox sleep 3600",
    );
    lab.sh(
        "h3",
        "docker run -d --name b3 --net nb tabby/busybox sleep 3600",
    );
    // TCP listeners: 3306 (MySQL-like) and 3307 on a2.
    for port in [3306, 3307] {
        lab.sh(
            "h2",
            &format!("docker exec -d a2 nc -ll -p {port} -e echo hello"),
        );
    }
    let (a1, a2, b3) = (
        lab.container_ip("h1", "a1"),
        lab.container_ip("h2", "a2"),
        lab.container_ip("h3", "b3"),
    );
    (lab, a1, a2, b3)
}

/// tabby's filter rules on a host, without counters.
fn rules(lab: &Lab, host: &str) -> String {
    lab.fw_rules(host)
}

#[test]
fn profiles_isolate_rules_open_ports_and_tags_change_only_sets() {
    let (lab, a1, a2, b3) = setup();
    // Same profile, across hosts: ping and TCP work.
    assert!(lab.pings("h1", "a1", &a2));
    assert!(lab.pings("h2", "a2", &a1));
    assert!(lab.connects("h1", "a1", &a2, 3306));
    // Across profiles: neither.
    assert!(!lab.pings("h3", "b3", &a2));
    assert!(!lab.pings("h1", "a1", &b3));
    assert!(!lab.connects("h3", "b3", &a2, 3306));

    // A rule lets B reach A's 3306, and nothing else.
    lab.sh(
        "h3",
        "tabby profile A rule add inbound allow tcp from tag B to ports 3306",
    );
    eventually(Duration::from_secs(15), "B to reach A's 3306", || {
        lab.connects("h3", "b3", &a2, 3306).then_some(())
    });
    assert!(!lab.connects("h3", "b3", &a2, 3307));
    assert!(!lab.pings("h3", "b3", &a2));
    let shown = lab.sh("h1", "tabby profile A rule show");
    assert!(
        shown.contains("2 allow tcp from tag B to ports 3306"),
        "{shown}"
    );

    // Removing it blocks again.
    lab.sh("h1", "tabby profile A rule remove inbound 2");
    eventually(Duration::from_secs(15), "B to lose A's 3306", || {
        (!lab.connects("h3", "b3", &a2, 3306)).then_some(())
    });

    // A tag on B's profile changes reachability through the sets alone.
    let before: Vec<String> = HOSTS.iter().map(|h| rules(&lab, h)).collect();
    lab.sh("h1", "tabby profile B tag add A");
    eventually(Duration::from_secs(15), "B, tagged A, to reach A", || {
        lab.pings("h3", "b3", &a2).then_some(())
    });
    assert!(lab.connects("h3", "b3", &a2, 3307));
    let after: Vec<String> = HOSTS.iter().map(|h| rules(&lab, h)).collect();
    assert_eq!(before, after, "no rule changed");
    assert!(lab.fw_set("h2", "tabby-t-A").contains(&b3));
    lab.sh("h1", "tabby profile B tag remove A");
    eventually(Duration::from_secs(15), "B to lose A again", || {
        (!lab.pings("h3", "b3", &a2)).then_some(())
    });

    // One container's profiles, calicoctl's `container … profile append`.
    lab.sh("h1", "tabby container b3 profile append A");
    eventually(
        Duration::from_secs(15),
        "b3, now also in A, to reach A",
        || lab.pings("h3", "b3", &a2).then_some(()),
    );
    lab.sh("h1", "tabby container b3 profile remove A");
    eventually(Duration::from_secs(15), "b3 to lose A", || {
        (!lab.pings("h3", "b3", &a2)).then_some(())
    });
    assert!(!lab.try_sh("h1", "tabby container b3 profile append nosuchprofile"));

    // Bulk edit: the JSON round-trips through `rule update`.
    lab.sh("h1", "tabby profile A rule json > /tmp/rules-$$.json && tabby profile A rule update < /tmp/rules-$$.json; rm -f /tmp/rules-$$.json");
    assert!(!lab.try_sh("h1", "echo '{\"inbound\": [{\"action\": \"allow\", \"protocol\": \"icmp\", \"to\": {\"ports\": [{\"first\": 1, \"last\": 1}]}}], \"outbound\": []}' | tabby profile A rule update"));

    // Bad rules change nothing.
    for bad in [
        "allow to ports 3306",
        "allow sctp",
        "allow tcp to ports 0",
        "allow from cidr 1.2.3.4/99",
    ] {
        let out = lab.run(
            "h1",
            &[
                "sh",
                "-c",
                &format!("tabby profile A rule add inbound {bad}"),
            ],
        );
        assert!(!out.status.success(), "{bad} accepted");
    }
    assert_eq!(
        lab.sh("h1", "tabby profile A rule show"),
        "Inbound rules:\n   1 allow from tag A\nOutbound rules:\n   1 allow\n"
    );

    // A profile in use cannot go; removed endpoints leave nothing behind.
    assert!(!lab.try_sh("h1", "tabby profile A remove"));
    lab.sh("h3", "docker rm -f b3");
    eventually(
        Duration::from_secs(15),
        "b3's chains and set entry to go",
        || {
            let gone = !rules(&lab, "h3").contains("TABBY-TW-")
                && !lab.fw_set("h1", "tabby-t-B").contains(&b3);
            gone.then_some(())
        },
    );
}

#[test]
fn spoofed_sources_are_dropped_and_a_restart_leaves_no_gap() {
    let (lab, _a1, a2, b3) = setup();
    // a1 borrows b3's identity: its packets must die on h1.
    let drops = |lab: &Lab| lab.spoof_drops("h1");
    let before = drops(&lab);
    lab.sh(
        "h1",
        &format!("docker exec a1 ip addr add {b3}/32 dev eth0"),
    );
    let spoofed = lab.run(
        "h1",
        &[
            "docker", "exec", "a1", "ping", "-c", "3", "-W", "1", "-I", &b3, &a2,
        ],
    );
    assert!(!spoofed.status.success());
    assert!(
        drops(&lab) >= before + 3,
        "the anti-spoofing rule dropped them"
    );
    lab.sh(
        "h1",
        &format!("docker exec a1 ip addr del {b3}/32 dev eth0"),
    );
    assert!(lab.pings("h1", "a1", &a2), "its own address still works");

    // While h2's agent restarts, b3 never gets through to a2.
    let prober = lab
        .command(&[
            "exec", "h3", "docker", "exec", "b3", "sh", "-c",
            &format!("n=0; for i in $(seq 1 10); do ping -c1 -W1 {a2} >/dev/null && n=$((n+1)); done; echo $n"),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    lab.stop("h2", "agent");
    std::thread::sleep(Duration::from_secs(2));
    lab.start("h2", "agent");
    let out = prober.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "isolation held through the restart"
    );
    assert!(lab.pings("h1", "a1", &a2), "and A still reaches A");
}
