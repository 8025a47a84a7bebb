//! A three-member etcd cluster losing members under a running lab: one
//! down keeps everything working; two down makes plugin calls fail with a
//! clear error in bounded time; everything recovers when they return, with
//! no duplicate address.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{Lab, eventually, stderr};

fn run(lab: &Lab, host: &str, name: &str) -> std::process::Output {
    lab.run(
        host,
        &[
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--net",
            "n1",
            "tabby/busybox",
            "sleep",
            "3600",
        ],
    )
}

#[test]
fn losing_one_member_is_fine_losing_two_fails_clearly_and_recovers() {
    let lab = Lab::up(3);
    lab.sh("h1", "tabby network create n1 --subnet 198.18.64.0/20");
    assert!(run(&lab, "h1", "before1").status.success());
    assert!(run(&lab, "h2", "before2").status.success());

    // One of three members down: attach, detach and routing keep working.
    lab.stop("h3", "etcd");
    assert!(run(&lab, "h1", "one-down1").status.success());
    assert!(run(&lab, "h2", "one-down2").status.success());
    let ip = lab.container_ip("h2", "one-down2");
    eventually(
        Duration::from_secs(10),
        "a new container on h2 to be reachable from h1",
        || lab.pings("h1", "one-down1", &ip).then_some(()),
    );
    lab.sh("h1", "docker rm -f before1");

    // Two down: no quorum. A plugin call fails with a clear error, and does
    // not hang dockerd beyond the bounded timeout.
    lab.stop("h2", "etcd");
    let started = Instant::now();
    let out = run(&lab, "h1", "no-quorum");
    let took = started.elapsed();
    assert!(!out.status.success(), "attach without quorum must fail");
    let msg = stderr(&out);
    assert!(msg.contains("etcd"), "the error names etcd: {msg}");
    assert!(took < Duration::from_secs(40), "bounded: took {took:?}");
    lab.sh("h1", "docker rm -f no-quorum >/dev/null 2>&1 || true");

    // Members return: everything works again.
    lab.start("h2", "etcd");
    lab.start("h3", "etcd");
    eventually(Duration::from_secs(60), "attach to work again", || {
        let ok = run(&lab, "h1", "after1").status.success();
        if !ok {
            lab.sh("h1", "docker rm -f after1 >/dev/null 2>&1 || true");
        }
        ok.then_some(())
    });
    assert!(run(&lab, "h3", "after3").status.success());
    let ip = lab.container_ip("h3", "after3");
    eventually(
        Duration::from_secs(10),
        "h3's container reachable from h1",
        || lab.pings("h1", "after1", &ip).then_some(()),
    );

    // No address was handed out twice.
    let mut ips = Vec::new();
    for host in ["h1", "h2", "h3"] {
        let out = lab.sh(
            host,
            "docker ps -q | xargs -r docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'",
        );
        ips.extend(out.lines().map(str::to_string));
    }
    let distinct: BTreeSet<&String> = ips.iter().collect();
    assert_eq!(distinct.len(), ips.len(), "duplicate addresses: {ips:?}");
    assert_eq!(ips.len(), 5);
}
