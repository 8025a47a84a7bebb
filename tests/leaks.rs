//! No leaked or doubly allocated addresses: `tabby ipam check` on
//! deliberately corrupted state (the check runs in the host's agent, asked
//! over its socket), and the agent SIGKILLed at every plugin call of
//! attach and detach (a failpoint), many times, after which the agent's
//! own periodic check leaves exactly the live endpoints allocated.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Lab, eventually, http, stderr, stdout};

fn check(lab: &Lab, args: &str) -> (bool, String) {
    check_with(lab, "h1", args)
}

fn check_on(lab: &Lab, host: &str) -> (bool, String) {
    check_with(lab, host, "")
}

fn check_with(lab: &Lab, host: &str, args: &str) -> (bool, String) {
    let command = format!("tabby ipam check --host {host} --grace 0 {args}");
    let out = lab.run(host, &["sh", "-c", &command]);
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// Makes a tabby-marked veth pair and a proto-77 route of no endpoint,
/// unless they are there, and checks; until one check (the agent's) finds
/// them with the rest. Any resync removes them, and the agent resyncs on
/// its own after each datastore change the corruption above made: once it
/// is quiet they stay. Polling the outcome needs no guess of when that is.
fn check_with_strays(lab: &Lab, expected: &[String]) -> String {
    eventually(
        Duration::from_secs(60),
        "a check that finds every corruption",
        || {
            // Best effort: a resync may remove the pair half-way through.
            lab.try_sh("h1", "ip link show tabbyf00d0 >/dev/null 2>&1 || { ip link add tabbyf00d0 type veth peer name tbtmpf00d0 && ip link set tabbyf00d0 alias tabby:f00d0 && ip link set tbtmpf00d0 alias tabby:f00d0 && ip link set tabbyf00d0 up; }");
            lab.try_sh(
                "h1",
                "ip route replace 198.18.79.99/32 dev tabbyf00d0 proto 77",
            );
            let (ok, found) = check(lab, "");
            assert!(!ok, "{found}");
            expected.iter().all(|e| found.contains(e)).then_some(found)
        },
    )
}

#[test]
fn ipam_check_finds_and_repairs_deliberately_corrupted_state() {
    // The agent's own timers stay off: what is found and repaired here is
    // the CLI's check alone.
    let lab = Lab::up_with(
        1,
        &[
            ("TABBY_IPAM_CHECK_INTERVAL", "0"),
            ("TABBY_RESYNC_INTERVAL", "0"),
        ],
    );
    lab.sh("h1", "tabby network create n1 --subnet 198.18.64.0/20");
    lab.sh(
        "h1",
        "docker run -d --name ca --net n1 tabby/busybox sleep 1d",
    );
    lab.sh(
        "h1",
        "docker run -d --name cb --net n1 tabby/busybox sleep 1d",
    );
    let (a, b) = (lab.container_ip("h1", "ca"), lab.container_ip("h1", "cb"));
    let (ok, clean) = check(&lab, "");
    assert!(ok, "{clean}");
    let socket = lab.socket("h1");
    let pool = "198.18.64.0/20";
    let call = |path: &str, body: serde_json::Value| http::post_ok(&socket, path, &body);
    // A leaked address: requested, then nothing.
    let leaked = call(
        "/IpamDriver.RequestAddress",
        json!({"PoolID": pool, "Address": "", "Options": {}}),
    );
    let leaked = leaked["Address"]
        .as_str()
        .unwrap()
        .trim_end_matches("/32")
        .to_string();
    // A stale endpoint: recorded with an address, unknown to Docker.
    let network = lab
        .sh("h1", "docker network inspect n1 -f '{{.Id}}'")
        .trim()
        .to_string();
    let stale = call(
        "/IpamDriver.RequestAddress",
        json!({"PoolID": pool, "Address": "", "Options": {}}),
    );
    let stale = stale["Address"].as_str().unwrap().to_string();
    call(
        "/NetworkDriver.CreateEndpoint",
        json!({
            "NetworkID": network, "EndpointID": "feedfacefeedface".repeat(4), "Interface": {"Address": stale}, "Options": {}
        }),
    );
    // A live endpoint whose address IPAM lost.
    call(
        "/IpamDriver.ReleaseAddress",
        json!({"PoolID": pool, "Address": b}),
    );
    // And a stray link and a stray route. The pair carries tabby's mark:
    // an unmarked one is not tabby's to judge.
    let expected = [
        format!("leaked address  {leaked}"),
        format!(
            "stale endpoint  feedfacefeed ({})",
            stale.trim_end_matches("/32")
        ),
        "unallocated     ".to_string(),
        "stray link      tabbyf00d0".to_string(),
        "stray link      tbtmpf00d0".to_string(),
        "stray route     198.18.79.99/32".to_string(),
        format!("({b})  live"),
    ];
    check_with_strays(&lab, &expected);
    let (ok, repaired) = check(&lab, "--repair");
    assert!(ok, "{repaired}");
    assert!(
        repaired.contains(&format!("re-allocated {b}")),
        "{repaired}"
    );
    let (ok, after) = check(&lab, "");
    assert!(ok && after.contains("agree with Docker"), "{after}");
    assert_eq!(
        lab.allocated_ips("h1"),
        BTreeSet::from([a.clone(), b.clone()])
    );
    assert!(!lab.sh("h1", "ip -o link").contains("f00d0"));
    assert!(lab.pings("h1", "ca", &b));
    // The re-allocated address is really held: asking for it is refused.
    let resp = http::post(
        &socket,
        "/IpamDriver.RequestAddress",
        json!({"PoolID": pool, "Address": b, "Options": null})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(resp.status, 500, "{}", String::from_utf8_lossy(&resp.body));
}

const ATTACH: [&str; 4] = [
    "IpamDriver.RequestAddress",
    "NetworkDriver.CreateEndpoint",
    "NetworkDriver.Join",
    "NetworkDriver.ProgramExternalConnectivity",
];
const DETACH: [&str; 4] = [
    "NetworkDriver.RevokeExternalConnectivity",
    "NetworkDriver.Leave",
    "NetworkDriver.DeleteEndpoint",
    "IpamDriver.ReleaseAddress",
];
/// Per host; three hosts run side by side: 3 x 5 x 8 = 120 kills.
const ROUNDS: usize = 5;
const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

fn agent_pid(lab: &Lab, host: &str) -> i32 {
    std::fs::read_to_string(lab.dir().join(host).join("agent.pid"))
        .expect("agent pid file")
        .trim()
        .parse()
        .expect("agent pid")
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn failpoint_file(lab: &Lab, host: &str) -> std::path::PathBuf {
    lab.dir().join(host).join("failpoint")
}

/// Starts `host`'s agent (stopping it first if it runs) with the
/// failpoint file armed from outside and no periodic repair.
fn start_agent(lab: &Lab, host: &str, env: &[(&str, &str)]) {
    let file = failpoint_file(lab, host);
    let file = file.to_str().expect("a UTF-8 lab path");
    let mut env = env.to_vec();
    env.push(("TABBY_FAILPOINT_FILE", file));
    lab.restart_agent(host, &env);
}

/// Starts the next container of the loop on n1, with no kill armed.
fn run_on_n1(lab: &Lab, host: &str, next: &mut usize) -> String {
    *next += 1;
    let name = format!("{host}k{next}");
    lab.sh(
        host,
        &format!("docker run -d --name {name} --net n1 tabby/busybox sleep 1d"),
    );
    name
}

/// Kills `host`'s agent at each attach and detach call, ROUNDS times,
/// before and after the handler in turn. Returns the number of kills.
fn kill_loop(lab: &Lab, host: &str) -> usize {
    let quiet = [("TABBY_IPAM_CHECK_INTERVAL", "0")];
    let file = failpoint_file(lab, host);
    start_agent(lab, host, &quiet);
    let (mut kills, mut next) = (0, 0);
    let mut running: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        for (i, call) in ATTACH.iter().chain(DETACH.iter()).enumerate() {
            let attach = i < ATTACH.len();
            // Detach only what runs: a stopped container makes no calls.
            let names = lab.sh(host, "docker ps --format '{{.Names}}'");
            running.retain(|name| names.lines().any(|l| l == name));
            if !attach && running.is_empty() {
                running.push(run_on_n1(lab, host, &mut next));
            }
            let when = if (round + i) % 2 == 0 {
                "before"
            } else {
                "after"
            };
            let failpoint = format!("{call}:{when}");
            // Every other round attaches a second interface instead: the
            // kill lands in `docker network connect n2` (which makes no
            // ProgramExternalConnectivity call: n1 keeps the gateway).
            let connect = attach && round % 2 == 1 && i < ATTACH.len() - 1;
            if connect {
                running.push(run_on_n1(lab, host, &mut next));
            }
            std::fs::write(&file, &failpoint).unwrap();
            let pid = agent_pid(lab, host);
            let command = if connect {
                format!("docker network connect n2 {}", running.last().unwrap())
            } else if attach {
                next += 1;
                let name = format!("{host}k{next}");
                running.push(name.clone());
                format!("docker run -d --name {name} --net n1 tabby/busybox sleep 1d")
            } else {
                format!("docker rm -f {}", running.remove(0))
            };
            let docker = lab
                .command(&["exec", host, "sh", "-c", &command])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                !alive(pid),
                "{host} {failpoint}: the agent was never killed"
            );
            kills += 1;
            std::fs::write(&file, "").unwrap();
            // Docker retried the call (and gave up, or not) against a dead
            // socket; the agent comes back for the cleanup calls.
            start_agent(lab, host, &quiet);
            let _ = docker.wait_with_output();
        }
    }
    kills
}

#[test]
fn agent_killed_at_every_plugin_call_leaks_nothing() {
    let lab = Lab::up(3);
    lab.sh("h1", "tabby network create n1 --subnet 198.18.64.0/20");
    // n2 is dual-stack: the kills leak nothing in either family.
    lab.sh(
        "h1",
        "tabby network create n2 --subnet 198.18.80.0/20 --subnet 2001:2:0:2000::/64",
    );
    // One container per host, on both networks, lives through all the kills.
    for host in HOSTS {
        eventually(Duration::from_secs(15), "n2 on every host", || {
            lab.try_sh(host, "docker network inspect n2 >/dev/null")
                .then_some(())
        });
        lab.sh(
            host,
            &format!("docker run -d --name {host}keep --net n1 tabby/busybox sleep 1d"),
        );
        lab.sh(host, &format!("docker network connect n2 {host}keep"));
    }
    let started = Instant::now();
    let kills: usize = std::thread::scope(|scope| {
        let loops: Vec<_> = HOSTS
            .iter()
            .map(|host| scope.spawn(|| kill_loop(&lab, host)))
            .collect();
        loops.into_iter().map(|l| l.join().unwrap()).sum()
    });
    eprintln!("{kills} kills in {:?}", started.elapsed());
    assert!(kills >= 100, "{kills} kills");

    // The agents' own periodic checks repair what the kills left: then
    // every host holds exactly the addresses of its live endpoints.
    let mut all = Vec::new();
    for host in HOSTS {
        // Containers whose `docker run` failed half-way go like any other.
        lab.sh(
            host,
            "docker ps -aq --filter status=created --filter status=exited | xargs -r docker rm -f",
        );
        start_agent(
            &lab,
            host,
            &[
                ("TABBY_IPAM_CHECK_INTERVAL", "1"),
                ("TABBY_IPAM_CHECK_GRACE", "0"),
            ],
        );
    }
    for host in HOSTS {
        lab.wait_consistent_on(host, &["n1", "n2"]);
    }
    // And the hosts attach new containers as usual, once the grace period
    // is back: with none, a check can take a record between CreateEndpoint
    // and Join for a leak (it did once in CI), which is what it is for.
    for host in HOSTS {
        start_agent(
            &lab,
            host,
            &[
                ("TABBY_IPAM_CHECK_INTERVAL", "1"),
                ("TABBY_IPAM_CHECK_GRACE", "30"),
            ],
        );
    }
    for host in HOSTS {
        lab.sh(
            host,
            &format!("docker run -d --name {host}new --net n1 tabby/busybox sleep 1d"),
        );
    }
    for host in HOSTS {
        let live = lab.wait_consistent_on(host, &["n1", "n2"]);
        assert!(live.len() >= 3, "{host}: {live:?}");
        let (ok, report) = check_on(&lab, host);
        assert!(ok, "{report}");
        // One IPv4 address per interface of every running container, and
        // an IPv6 one per interface on n2.
        let on_n2: usize = lab
            .sh(host, "docker network inspect n2 -f '{{len .Containers}}'")
            .trim()
            .parse()
            .unwrap();
        let ipv6 = live.iter().filter(|a| a.contains(':')).count();
        assert!(
            on_n2 >= 1 && ipv6 == on_n2,
            "{host}: {on_n2} on n2, {live:?}"
        );
        let interfaces: usize = lab
            .sh(
                host,
                "docker ps -q | xargs -r docker inspect -f '{{len .NetworkSettings.Networks}}'",
            )
            .split_whitespace()
            .map(|n| n.parse::<usize>().unwrap())
            .sum();
        assert_eq!(interfaces, live.len() - ipv6, "{host}");
        assert!(lab.agent_log(host).contains("failpoint: killing the agent"));
        all.extend(live);
    }
    // Nothing allocated twice, and every survivor reaches every other.
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "{all:?}");
    let unreachable = lab.unreachable("h1", "h1keep", &all);
    assert!(unreachable.is_empty(), "{unreachable:?}");
}
