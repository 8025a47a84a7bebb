//! Restarts that must not leak or duplicate addresses: dockerd restarted
//! with and without --live-restore (containers with a restart policy come
//! back reachable), and a simulated machine reboot (`scripts/lab reboot`:
//! everything SIGKILLed, the namespace rebuilt, the same etcd data), after
//! which endpoints that no longer exist are released by the agent.

mod support;

use std::time::{Duration, Instant};

use support::{Lab, eventually, stderr};

/// The agent repairs every second; 3 s leave Docker's own calls alone.
const CHECKING: [(&str, &str); 2] = [
    ("TABBY_IPAM_CHECK_INTERVAL", "1"),
    ("TABBY_IPAM_CHECK_GRACE", "3"),
];

/// SIGTERM to h1's dockerd, as a service manager would stop it (the lab's
/// own `stop` removes containers first, which is not a restart).
fn stop_dockerd(lab: &Lab) {
    let pidfile = lab.dir().join("h1/dockerd.pid");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "dockerd did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_dockerd(lab: &Lab, args: &str) {
    let out = lab
        .command(&["start", "h1", "dockerd"])
        .env("TABBY_LAB_DOCKERD_ARGS", args)
        .output()
        .unwrap();
    assert!(out.status.success(), "dockerd start: {}", stderr(&out));
}

fn running(lab: &Lab, names: &[&str]) {
    for name in names {
        eventually(Duration::from_secs(60), &format!("{name} running"), || {
            (lab.sh(
                "h1",
                &format!("docker inspect -f '{{{{.State.Running}}}}' {name}"),
            )
            .trim()
                == "true")
                .then_some(())
        });
    }
}

fn pid_of(lab: &Lab, name: &str) -> String {
    lab.sh(
        "h1",
        &format!("docker inspect -f '{{{{.State.Pid}}}}' {name}"),
    )
    .trim()
    .to_string()
}

#[test]
fn dockerd_restarts_with_and_without_live_restore_keep_addresses_exact() {
    let lab = Lab::up_with(1, &CHECKING);
    lab.sh("h1", "tabby network create n1 --subnet 198.18.64.0/20");
    for name in ["r1", "r2"] {
        lab.sh("h1", &format!(
            "docker run -d --restart always --stop-timeout 1 --name {name} --net n1 tabby/busybox sleep 1d"
        ));
    }
    lab.sh(
        "h1",
        "docker run -d --stop-timeout 1 --name once --net n1 tabby/busybox sleep 1d",
    );
    let once = lab.container_ip("h1", "once");
    assert_eq!(lab.wait_consistent("h1", "n1").len(), 3);

    // Without live-restore: containers stop with dockerd; r1 and r2 come
    // back on their own, `once` does not and its address is free again.
    stop_dockerd(&lab);
    start_dockerd(&lab, "");
    running(&lab, &["r1", "r2"]);
    let live = lab.wait_consistent("h1", "n1");
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(!lab.allocated_ips("h1").contains(&once));
    let r2 = lab.container_ip("h1", "r2");
    assert!(lab.pings("h1", "r1", &r2));

    // Switch to live-restore (one more plain restart), then restart under
    // it: containers keep running, and keep their addresses, throughout.
    stop_dockerd(&lab);
    start_dockerd(&lab, "--live-restore");
    running(&lab, &["r1", "r2"]);
    let before = lab.wait_consistent("h1", "n1");
    let (r1_pid, r2) = (pid_of(&lab, "r1"), lab.container_ip("h1", "r2"));
    stop_dockerd(&lab);
    assert!(
        lab.try_sh(
            "h1",
            &format!("nsenter -t {r1_pid} -n busybox ping -c1 -W2 {r2}")
        ),
        "r1 reaches r2 while dockerd is down"
    );
    start_dockerd(&lab, "--live-restore");
    assert_eq!(pid_of(&lab, "r1"), r1_pid, "the same container process");
    assert_eq!(lab.wait_consistent("h1", "n1"), before);
    assert!(lab.pings("h1", "r1", &r2));
}

#[test]
fn a_rebooted_host_releases_what_no_longer_exists() {
    let lab = Lab::up_with(1, &CHECKING);
    lab.sh("h1", "tabby network create n1 --subnet 198.18.64.0/20");
    lab.sh(
        "h1",
        "docker run -d --restart always --name keep --net n1 tabby/busybox sleep 1d",
    );
    lab.sh(
        "h1",
        "docker run -d --name gone --net n1 tabby/busybox sleep 1d",
    );
    let gone = lab.container_ip("h1", "gone");
    assert_eq!(lab.wait_consistent("h1", "n1").len(), 2);

    let out = lab.command(&["reboot", "h1"]).output().unwrap();
    assert!(out.status.success(), "reboot: {}", stderr(&out));
    running(&lab, &["keep"]);
    let live = lab.wait_consistent("h1", "n1");
    assert_eq!(live.len(), 1, "{live:?}");
    assert!(
        !lab.allocated_ips("h1").contains(&gone),
        "gone's address released"
    );
    let keep = lab.container_ip("h1", "keep");
    lab.sh(
        "h1",
        "docker run -d --name fresh --net n1 tabby/busybox sleep 1d",
    );
    assert!(lab.pings("h1", "fresh", &keep));
    // With the agent up before dockerd, dockerd's own boot cleanup
    // releases the old endpoints' addresses through the plugin.
    let log = lab.agent_log("h1");
    assert!(
        log.contains(&format!("released address ip={gone}")),
        "{log}"
    );

    // Booted in the wrong order, Docker cannot reach the plugin for its
    // cleanup: the agent's periodic check releases what no longer exists.
    let before: Vec<String> = ["keep", "fresh"]
        .iter()
        .map(|c| lab.container_ip("h1", c))
        .collect();
    let started = Instant::now();
    let out = lab
        .command(&["reboot", "h1"])
        .env("TABBY_LAB_AGENT_LAST", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "reboot: {}", stderr(&out));
    eprintln!("reboot with the agent last: {:?}", started.elapsed());
    let live = lab.wait_consistent("h1", "n1");
    for ip in &before {
        assert!(
            live.contains(ip) || !lab.allocated_ips("h1").contains(ip),
            "{ip} neither live nor released"
        );
    }
    assert!(
        lab.agent_log("h1").contains("ipam check repaired"),
        "{}",
        lab.agent_log("h1")
    );
}
