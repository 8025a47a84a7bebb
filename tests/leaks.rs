//! No leaked or doubly allocated addresses: `tabby ipam check` on
//! deliberately corrupted state, and the agent SIGKILLed at every plugin
//! call of attach and detach (a failpoint), many times, after which the
//! agent's own periodic check leaves exactly the live endpoints allocated.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Lab, eventually, http, stderr, stdout};

/// Addresses IPAM holds for h1 (from `tabby ipam show -o json`: blocks
/// with their allocations, each described with its host).
fn allocated(lab: &Lab) -> BTreeSet<String> {
    let json = lab.sh("h1", "tabby ipam show -o json");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, block)| {
            block["allocations"]
                .as_object()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|(_, holder)| holder.as_str().is_some_and(|h| h.ends_with("on host h1")))
        .map(|(ip, _)| ip)
        .collect()
}

/// Addresses of the endpoints Docker has on the network, and endpoint
/// records tabby keeps for h1.
fn live(lab: &Lab, network: &str) -> BTreeSet<String> {
    lab.sh(
        "h1",
        &format!("docker network inspect {network} -f '{{{{range .Containers}}}}{{{{.IPv4Address}}}} {{{{end}}}}'"),
    )
    .split_whitespace()
    .map(|a| a.trim_end_matches("/32").to_string())
    .collect()
}

fn recorded(lab: &Lab) -> BTreeSet<String> {
    let json = lab.sh("h1", "tabby endpoint show -o json");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["host"] == "h1")
        .map(|e| e["ip"].as_str().unwrap().to_string())
        .collect()
}

fn check(lab: &Lab, args: &str) -> (bool, String) {
    let out = lab.run(
        "h1",
        &[
            "sh",
            "-c",
            &format!("tabby ipam check --host h1 --grace 0 {args}"),
        ],
    );
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

#[test]
fn ipam_check_finds_and_repairs_deliberately_corrupted_state() {
    let lab = Lab::up(1);
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
    let call = |path: &str, body: serde_json::Value| {
        let resp = http::post(&socket, path, body.to_string().as_bytes());
        assert_eq!(
            resp.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        resp.json()
    };
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
            "NetworkID": network, "EndpointID": "feedfacefeedface0000", "Interface": {"Address": stale}, "Options": {}
        }),
    );
    // A live endpoint whose address IPAM lost.
    call(
        "/IpamDriver.ReleaseAddress",
        json!({"PoolID": pool, "Address": b}),
    );
    // A stray link and a stray route, made while the agent is down (its
    // resync would remove them at once).
    lab.stop("h1", "agent");
    lab.sh("h1", "ip link add tabbyzz0 type veth peer name tabbyzz1 && ip link set tabbyzz0 up && ip route add 198.18.79.99/32 dev tabbyzz0 proto 77");

    let (ok, found) = check(&lab, "");
    assert!(!ok, "{found}");
    for expected in [
        format!("leaked address  {leaked}"),
        format!(
            "stale endpoint  feedfacefeed ({})",
            stale.trim_end_matches("/32")
        ),
        format!("unallocated     "),
        "stray link      tabbyzz0".to_string(),
        "stray link      tabbyzz1".to_string(),
        "stray route     198.18.79.99/32".to_string(),
    ] {
        assert!(found.contains(&expected), "{expected:?} not in:\n{found}");
    }
    assert!(found.contains(&format!("({b})  live")), "{found}");
    let (ok, repaired) = check(&lab, "--repair");
    assert!(ok, "{repaired}");
    assert!(
        repaired.contains(&format!("re-allocated {b}")),
        "{repaired}"
    );
    lab.start("h1", "agent");
    let (ok, after) = check(&lab, "");
    assert!(ok && after.contains("agree with Docker"), "{after}");
    assert_eq!(allocated(&lab), BTreeSet::from([a.clone(), b.clone()]));
    assert!(!lab.sh("h1", "ip -o link").contains("tabbyzz"));
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
const ROUNDS: usize = 7;

fn agent_pid(lab: &Lab) -> Option<i32> {
    std::fs::read_to_string(lab.dir().join("h1/agent.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Restarts h1's agent with `env`; returns its pid.
fn restart_agent(lab: &Lab, env: &[(&str, &str)]) -> i32 {
    lab.stop("h1", "agent");
    let out = lab
        .command(&["start", "h1", "agent"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "agent start: {}", stderr(&out));
    agent_pid(lab).expect("agent pid")
}

#[test]
fn agent_killed_at_every_plugin_call_leaks_nothing() {
    let lab = Lab::up(1);
    lab.sh("h1", "tabby network create n1 --subnet 198.18.64.0/20");
    let quiet = [("TABBY_IPAM_CHECK_INTERVAL", "0")];
    let mut kills = 0;
    let mut next = 0;
    let mut to_remove: Vec<String> = Vec::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        for (i, call) in ATTACH.iter().chain(DETACH.iter()).enumerate() {
            let when = if (round + i) % 2 == 0 {
                "before"
            } else {
                "after"
            };
            let attach = i < ATTACH.len();
            if !attach && to_remove.is_empty() {
                continue;
            }
            let failpoint = format!("{call}:{when}");
            let pid = restart_agent(&lab, &[quiet[0], ("TABBY_FAILPOINT", &failpoint)]);
            let command = if attach {
                next += 1;
                let name = format!("k{next}");
                to_remove.push(name.clone());
                format!("docker run -d --name {name} --net n1 tabby/busybox sleep 1d")
            } else {
                format!("docker rm -f {}", to_remove.remove(0))
            };
            let docker = lab
                .command(&["exec", "h1", "sh", "-c", &command])
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                !alive(pid),
                "{failpoint}: the agent was never killed (call not made?)"
            );
            kills += 1;
            restart_agent(&lab, &quiet);
            // Docker retries the call on the restarted agent, or gives up
            // and cleans up; either way the command ends.
            let out = docker.wait_with_output().unwrap();
            let _ = out;
        }
    }
    eprintln!("{kills} kills in {:?}", started.elapsed());
    assert!(kills >= 100, "{kills} kills");
    // Containers whose `docker run` failed half-way are removed like any
    // other; what remains is what Docker runs.
    lab.sh(
        "h1",
        "docker ps -aq --filter status=created --filter status=exited | xargs -r docker rm -f",
    );

    // The agent's own periodic check repairs what the kills left.
    restart_agent(
        &lab,
        &[
            ("TABBY_IPAM_CHECK_INTERVAL", "1"),
            ("TABBY_IPAM_CHECK_GRACE", "0"),
        ],
    );
    let live = live(&lab, "n1");
    assert!(!live.is_empty());
    eventually(
        Duration::from_secs(30),
        "allocations == live endpoints",
        || (allocated(&lab) == live && recorded(&lab) == live).then_some(()),
    );
    let (ok, report) = check(&lab, "");
    assert!(ok, "{report}");
    // Nothing allocated twice: every running container has its own address
    // and reaches the others.
    let running = lab.sh("h1", "docker ps -q | wc -l");
    assert_eq!(running.trim().parse::<usize>().unwrap(), live.len());
    let first = lab.sh("h1", "docker ps --format '{{.Names}}' | head -1");
    let unreachable = lab.unreachable("h1", first.trim(), &live);
    assert!(unreachable.is_empty(), "{unreachable:?}");
    let log = lab.agent_log("h1");
    assert!(log.contains("failpoint: killing the agent"));
}
