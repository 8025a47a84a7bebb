//! An agent that stays up and converges: drift made by hand (a chain
//! flushed, the FORWARD hook displaced, a set emptied, a route deleted,
//! the liveness key deleted) is repaired within the resync interval, and
//! an agent started while etcd is down serves a clear error, then attaches
//! containers once etcd is back.

mod support;

use std::time::Duration;

use support::firewall::forward_hook;
use support::{Lab, eventually, http, stderr};

const REPAIR: Duration = Duration::from_secs(30);

fn setup() -> (Lab, String, String, String) {
    let lab = Lab::up_with(1, &[("TABBY_RESYNC_INTERVAL", "3")]);
    lab.sh("h1", "tabby pool add 198.18.64.0/20");
    for p in ["A", "B"] {
        let net = p.to_lowercase();
        lab.sh(
            "h1",
            &format!("docker network create -d tabby --ipam-driver tabby --subnet 198.18.64.0/20 --opt tabby.profile={p} n{net}"),
        );
    }
    for (name, net) in [("a1", "na"), ("a2", "na"), ("b1", "nb")] {
        lab.sh(
            "h1",
            &format!("docker run -d --name {name} --net {net} tabby/busybox sleep 3600"),
        );
    }
    let ips = ["a1", "a2", "b1"].map(|c| lab.container_ip("h1", c));
    let [a1, a2, b1] = ips;
    (lab, a1, a2, b1)
}

/// a2 reaches a1 (same profile) and b1 does not (other profile).
fn policy_holds(lab: &Lab, a1: &str) {
    assert!(lab.pings("h1", "a2", a1), "the allowed pair must connect");
    assert!(
        !lab.pings("h1", "b1", a1),
        "the blocked pair must stay blocked"
    );
}

fn etcdctl(lab: &Lab, args: &str) -> String {
    lab.sh(
        "h1",
        &format!("ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:2379 {args}"),
    )
}

#[test]
fn drift_is_repaired_and_an_agent_waits_for_etcd() {
    let (lab, a1, a2, _b1) = setup();
    policy_holds(&lab, &a1);

    // a1's inbound chain flushed: it would return at once and let anything in.
    let id = lab.sh(
        "h1",
        "docker inspect -f '{{.NetworkSettings.Networks.na.EndpointID}}' a1",
    );
    let chain = format!("TABBY-TW-{}", &id.trim()[..12]);
    let before = lab.fw_chain("h1", "filter", &chain);
    assert!(before.lines().count() > 2, "{chain}: {before}");
    lab.fw_flush_chain("h1", &chain);
    eventually(REPAIR, "the flushed chain to come back", || {
        (lab.fw_chain("h1", "filter", &chain) == before).then_some(())
    });
    policy_holds(&lab, &a1);

    // The FORWARD hook removed and an ACCEPT put first, as a firewall
    // script or a dockerd restart can: tabby's hook is first again.
    let hook = forward_hook();
    lab.sh(
        "h1",
        &format!("iptables -D FORWARD {hook} && iptables -I FORWARD 1 -j ACCEPT"),
    );
    eventually(REPAIR, "the FORWARD hook to be first again", || {
        let forward = lab.sh("h1", "iptables -S FORWARD");
        let first = forward.lines().find(|l| l.starts_with("-A FORWARD"));
        (first == Some(format!("-A FORWARD {hook}").as_str())).then_some(())
    });
    policy_holds(&lab, &a1);

    // A tag set emptied: the allowed pair is back once it is refilled.
    lab.fw_flush_set("h1", "tabby-t-A");
    eventually(REPAIR, "the set to be refilled", || {
        let set = lab.fw_set("h1", "tabby-t-A");
        (set.contains(&a1) && set.contains(&a2)).then_some(())
    });
    policy_holds(&lab, &a1);
    let log = lab.agent_log("h1");
    assert!(log.contains("firewall drift repaired"), "{log}");

    // Passes that find nothing to change in etcd's terms write nothing:
    // two more passes, each repairing a set by hand, keep the revision.
    let revision = lab.etcd_snapshot("h1").1;
    let repairs = |lab: &Lab| {
        lab.agent_log("h1")
            .matches("firewall drift repaired")
            .count()
    };
    for _ in 0..2 {
        let seen = repairs(&lab);
        lab.fw_flush_set("h1", "tabby-t-A");
        eventually(REPAIR, "another pass to refill the set", || {
            (repairs(&lab) > seen).then_some(())
        });
    }
    assert_eq!(
        lab.etcd_snapshot("h1").1,
        revision,
        "a quiet periodic pass wrote to etcd"
    );

    // A route deleted by hand.
    let route = lab
        .routes("h1")
        .into_iter()
        .find(|r| r.starts_with(&format!("{a1} ")))
        .expect("a1's route");
    lab.sh("h1", &format!("ip route del {a1}/32"));
    assert!(!lab.routes("h1").contains(&route));
    eventually(REPAIR, "a1's route to come back", || {
        lab.routes("h1").contains(&route).then_some(())
    });
    assert!(lab.pings("h1", "a2", &a1));

    // The liveness key deleted by hand.
    assert_eq!(etcdctl(&lab, "del /tabby/alive/h1").trim(), "1");
    eventually(REPAIR, "the liveness key to come back", || {
        (!etcdctl(&lab, "get /tabby/alive/h1 --keys-only")
            .trim()
            .is_empty())
        .then_some(())
    });

    etcd_down_at_start(&lab, &a1);
}

/// The agent restarted while etcd is down: it serves its socket with a
/// clear error, and attaches containers once etcd is back.
fn etcd_down_at_start(lab: &Lab, a1: &str) {
    lab.stop("h1", "agent");
    lab.stop("h1", "etcd");
    // scripts/lab waits for the socket: an agent that exits fails here.
    lab.start("h1", "agent");
    let pid = std::fs::read_to_string(lab.dir().join("h1/agent.pid")).unwrap();
    let socket = lab.socket("h1");
    let activate = http::post(&socket, "/Plugin.Activate", b"");
    assert_eq!(activate.status, 200);
    let body = br#"{"PoolID":"198.18.64.0/20","Address":"","Options":{}}"#;
    let refused = http::post(&socket, "/IpamDriver.RequestAddress", body);
    assert_eq!(refused.status, 500);
    let json = refused.json();
    let err = json["Err"].as_str().expect("Err");
    assert!(err.contains("etcd unavailable"), "{err}");
    assert_eq!(json["Error"], json["Err"]);

    let out = lab.run(
        "h1",
        &[
            "docker",
            "run",
            "-d",
            "--name",
            "early",
            "--net",
            "na",
            "tabby/busybox",
            "sleep",
            "3600",
        ],
    );
    assert!(!out.status.success(), "attach without etcd must fail");
    assert!(stderr(&out).contains("etcd"), "{}", stderr(&out));
    lab.sh("h1", "docker rm -f early >/dev/null 2>&1 || true");
    assert!(
        lab.try_sh("h1", &format!("kill -0 {}", pid.trim())),
        "the agent is still running"
    );

    lab.start("h1", "etcd");
    eventually(
        Duration::from_secs(60),
        "attach to work with etcd back",
        || {
            let ok = lab
                .run(
                    "h1",
                    &[
                        "docker",
                        "run",
                        "-d",
                        "--name",
                        "late",
                        "--net",
                        "na",
                        "tabby/busybox",
                        "sleep",
                        "3600",
                    ],
                )
                .status
                .success();
            if !ok {
                lab.sh("h1", "docker rm -f late >/dev/null 2>&1 || true");
            }
            ok.then_some(())
        },
    );
    eventually(
        Duration::from_secs(15),
        "the new container to reach a1",
        || lab.pings("h1", "late", a1).then_some(()),
    );
    let log = lab.agent_log("h1");
    assert!(
        log.contains("waiting for etcd") && log.contains("agent ready"),
        "{log}"
    );
}
