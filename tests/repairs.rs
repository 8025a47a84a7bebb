//! Repairs that cannot hurt (issue 9, section 6), on one three-host lab
//! shared by the tests: a second agent with a live agent's hostname is
//! refused and changes nothing; `ipam check --host` of another live host
//! is refused, of a host that is down gives a datastore-only report; a
//! network Docker answers 404 for makes liveness unknown, and `--repair`
//! frees nothing.
//!
//! Each test has its own hosts' state to change: h1's node (the duplicate
//! agents), h2's agent (killed and restarted), h3's records (the unknown
//! network). Cross-host pings avoid h2, whose routes come and go.

mod support;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Lab, eventually, http, shared_lab, stderr, stdout};

/// The containers of the shared lab: (host, name).
const CONTAINERS: [(&str, &str); 4] = [("h1", "h1a"), ("h1", "h1b"), ("h2", "h2a"), ("h3", "h3a")];
const POOL: &str = "198.18.64.0/20";

/// The lab, brought up by the first test that asks. The agents never
/// repair on their own: what is freed (or not) is the CLI's doing.
fn lab() -> Arc<Lab> {
    shared_lab(|| {
        let lab = Lab::up_with(3, &[("TABBY_IPAM_CHECK_INTERVAL", "0")]);
        lab.sh("h1", &format!("tabby network create n1 --subnet {POOL}"));
        for (host, name) in CONTAINERS {
            lab.sh(
                host,
                &format!("docker run -d --name {name} --net n1 tabby/busybox sleep 1d"),
            );
        }
        for host in ["h1", "h2", "h3"] {
            lab.wait_consistent(host, "n1");
        }
        lab
    })
}

fn ip(lab: &Lab, name: &str) -> String {
    let (host, _) = CONTAINERS.iter().find(|(_, n)| *n == name).unwrap();
    lab.container_ip(host, name)
}

/// `tabby ipam check --grace 0 ARGS` on `on`: (success, stdout + stderr).
fn check(lab: &Lab, on: &str, args: &str) -> (bool, String) {
    let out = lab.run(
        on,
        &["sh", "-c", &format!("tabby ipam check --grace 0 {args}")],
    );
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// An etcd key as etcd has it (value, revisions, lease), or Null.
fn etcd_key(lab: &Lab, key: &str) -> Value {
    let json = lab.sh(
        "h1",
        &format!("ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:2379 get {key} -w json"),
    );
    let value: Value = serde_json::from_str(&json).unwrap();
    value["kvs"][0].clone()
}

fn node(lab: &Lab, host: &str) -> Value {
    let nodes: Vec<Value> = serde_json::from_str(&lab.sh("h1", "tabby node show -o json")).unwrap();
    let node = nodes.into_iter().find(|n| n["hostname"] == host);
    node.unwrap_or_default()
}

/// What a host holds in tabby: its addresses and its endpoint records.
fn holdings(lab: &Lab, host: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    (lab.allocated_ips(host), lab.recorded_ips(host))
}

/// Local routes (to this host's own endpoints) and tabby links of a host.
fn local_kernel(lab: &Lab, host: &str) -> (BTreeSet<String>, String) {
    let routes = lab
        .routes(host)
        .into_iter()
        .filter(|r| r.contains(" dev tabby"));
    let links = lab.sh(
        host,
        "ip -o link show | awk -F': ' '{print $2}' | grep ^tabby | sort",
    );
    (routes.collect(), links)
}

/// A process that is killed, if it still runs, when the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts, on lab host `on`, a second agent that calls itself h1, on a
/// socket of its own (the host's agent keeps its socket).
fn duplicate_h1(lab: &Lab, on: &str, ip: &str) -> (Reaped, std::path::PathBuf) {
    let socket = lab.dir().join(format!("dup-on-{on}.sock"));
    let log = lab.dir().join(format!("dup-on-{on}.log"));
    let docker = format!(
        "unix://{}",
        lab.dir().join(on).join("docker.sock").display()
    );
    let args = format!(
        "exec {on} tabby agent --hostname h1 --ip {ip} --node-ttl 16 --docker-host {docker} --socket {}",
        socket.display()
    );
    let child = lab
        .command(&args.split_whitespace().collect::<Vec<_>>())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (Reaped(child), log)
}

#[test]
fn a_second_agent_with_a_live_hostname_is_refused_and_changes_nothing() {
    let lab = lab();
    let node_before = node(&lab, "h1");
    assert_eq!(node_before["state"], "up", "{node_before}");
    let record = etcd_key(&lab, "/tabby/nodes/h1");
    let alive = etcd_key(&lab, "/tabby/alive/h1");
    assert!(alive["lease"].as_i64().is_some_and(|l| l != 0), "{alive}");
    let kernel = local_kernel(&lab, "h1");
    let holdings_before = holdings(&lab, "h1");

    // One on h1 itself (its kernel, its Docker), one on another host.
    let mut agents = [
        duplicate_h1(&lab, "h1", "198.18.0.11"),
        duplicate_h1(&lab, "h3", "198.18.0.13"),
    ];
    // While it waits out the lease (longer than a call waits), calls are
    // told why, not that etcd is down.
    let socket = lab.dir().join("dup-on-h1.sock");
    eventually(Duration::from_secs(20), "the duplicate's socket", || {
        socket.exists().then_some(())
    });
    let body = br#"{"PoolID":"198.18.64.0/20","Address":"","Options":{}}"#;
    let refused = http::post(&socket, "/IpamDriver.RequestAddress", body);
    assert_eq!(refused.status, 500);
    let err = refused.json()["Err"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains("is starting: the liveness lease of host h1 is held"),
        "{err}"
    );
    for (agent, log) in &mut agents {
        let status = eventually(
            Duration::from_secs(60),
            "the duplicate agent to exit",
            || agent.0.try_wait().unwrap(),
        );
        let message = std::fs::read_to_string(&*log).unwrap();
        assert!(!status.success(), "{message}");
        assert!(
            message.contains("hostname h1 is taken")
                && message.contains("an agent at 198.18.0.11")
                && message.contains("another --hostname"),
            "{message}"
        );
        // Refused before it prepared the host or resynced anything.
        assert!(!message.contains("agent ready"), "{message}");
    }

    assert_eq!(etcd_key(&lab, "/tabby/nodes/h1"), record);
    let alive_after = etcd_key(&lab, "/tabby/alive/h1");
    assert_eq!(alive_after["lease"], alive["lease"]);
    assert_eq!(alive_after["create_revision"], alive["create_revision"]);
    let node_after = node(&lab, "h1");
    for field in ["ip", "started", "state", "version"] {
        assert_eq!(node_after[field], node_before[field], "{field}");
    }
    assert_eq!(local_kernel(&lab, "h1"), kernel);
    assert_eq!(holdings(&lab, "h1"), holdings_before);
    // The first agent still serves h1: its containers reach each other
    // and the other hosts, and its check runs.
    for target in ["h1b", "h3a"] {
        assert!(lab.pings("h1", "h1a", &ip(&lab, target)), "h1a -> {target}");
    }
    assert!(lab.pings("h3", "h3a", &ip(&lab, "h1b")), "h3a -> h1b");
    let (ok, report) = check(&lab, "h1", "--host h1");
    assert!(ok, "{report}");
}

/// How many times the host's agent came up (its log is appended to).
fn ready_count(lab: &Lab, host: &str) -> usize {
    lab.agent_log(host).matches("agent ready").count()
}

fn agent_pid(lab: &Lab, host: &str) -> i32 {
    let pidfile = lab.dir().join(host).join("agent.pid");
    let pid = std::fs::read_to_string(pidfile).unwrap();
    pid.trim().parse().unwrap()
}

#[test]
fn ipam_check_of_another_host_is_refused_while_it_is_up_and_datastore_only_when_down() {
    let lab = lab();
    let h2a = ip(&lab, "h2a");
    let before = holdings(&lab, "h2");
    assert!(
        before.0.contains(&h2a) && before.1.contains(&h2a),
        "{before:?}"
    );

    // From h1, while h2's agent holds its lease: h1's agent refuses to
    // judge h2 against h1's Docker and kernel.
    let (ok, refused) = check(&lab, "h1", "--repair --host h2");
    assert!(!ok, "{refused}");
    assert!(
        refused.contains("refused the check of h2")
            && refused.contains("this agent is h1, not h2")
            && refused.contains("run the check on h2"),
        "{refused}"
    );
    assert!(!refused.contains("repaired"), "{refused}");
    assert_eq!(holdings(&lab, "h2"), before);
    assert_eq!(lab.container_ip("h2", "h2a"), h2a);
    assert!(lab.pings("h1", "h1a", &h2a), "h1a -> h2a");
    // The same check on h2, by h2's own agent, runs.
    let (ok, report) = check(&lab, "h2", "--repair --host h2");
    assert!(ok && report.contains("agree with Docker"), "{report}");
    assert_eq!(holdings(&lab, "h2"), before);

    // h2's agent dies; once its lease expires h2 is down, and from h1 only
    // its records are reported: nothing is judged or freed.
    let pid = nix::unistd::Pid::from_raw(agent_pid(&lab, "h2"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    eventually(Duration::from_secs(30), "h2's lease to expire", || {
        (node(&lab, "h2")["state"] == "down").then_some(())
    });
    for args in ["--host h2", "--repair --host h2"] {
        let (ok, report) = check(&lab, "h1", args);
        assert!(ok, "{args}: {report}");
        let summary = format!(
            "h2 is down (no liveness lease): datastore only, nothing judged by liveness; it holds {} address(es) and has {} endpoint record(s)",
            before.0.len(),
            before.1.len()
        );
        assert!(report.contains(&summary), "{args}: {report}");
        assert_eq!(
            report.contains("nothing repaired"),
            args.contains("--repair"),
            "{report}"
        );
        assert_eq!(holdings(&lab, "h2"), before);
    }
    assert_eq!(lab.container_ip("h2", "h2a"), h2a);

    // Back up, h2's agent takes over its own host again.
    let started = ready_count(&lab, "h2");
    lab.start("h2", "agent");
    eventually(Duration::from_secs(60), "h2's agent to be ready", || {
        (ready_count(&lab, "h2") > started).then_some(())
    });
    eventually(Duration::from_secs(30), "h1a to reach h2a again", || {
        lab.pings("h1", "h1a", &h2a).then_some(())
    });
    let (ok, report) = check(&lab, "h2", "--host h2");
    assert!(ok && report.contains("agree with Docker"), "{report}");
    assert_eq!(holdings(&lab, "h2"), before);
}

/// A Docker-style (64 hex digits) ID, distinct per `tag` and run.
fn hex_id(tag: &str) -> String {
    format!("{:0<64}", format!("{tag}{:08x}", std::process::id()))
}

/// What `corrupt_h3` made: a network Docker lost, with an endpoint;
/// an endpoint on n1 Docker does not have; an address held for nothing.
struct Corruption {
    lost: String,
    lost_endpoint: String,
    stale_endpoint: String,
    /// The three addresses held for them.
    held: [String; 3],
}

/// What dockerd sends for a network it then loses (it crashed before
/// committing it, or its state was wiped): tabby has the network, and
/// Docker answers 404 for it. With liveness known, the three addresses
/// would be freed.
fn corrupt_h3(lab: &Lab, call: &dyn Fn(&str, Value) -> Value) -> Corruption {
    let inspect = |format: &str| lab.sh("h3", &format!("docker network inspect n1 -f '{format}'"));
    let n1 = inspect("{{.Id}}").trim().to_string();
    let options: Value = serde_json::from_str(&inspect("{{json .Options}}")).unwrap();
    let lost = hex_id("dead");
    call(
        "/NetworkDriver.CreateNetwork",
        json!({
            "NetworkID": lost, "Options": {"com.docker.network.generic": options},
            "IPv4Data": [{"AddressSpace": "", "Pool": POOL, "Gateway": "169.254.1.1/32"}],
            "IPv6Data": []
        }),
    );
    let request = || {
        let reply = call(
            "/IpamDriver.RequestAddress",
            json!({"PoolID": POOL, "Address": "", "Options": {}}),
        );
        reply["Address"].as_str().unwrap().to_string()
    };
    let held = [request(), request(), request()];
    let (lost_endpoint, stale_endpoint) = (hex_id("feed"), hex_id("beef"));
    for (network, id, ip) in [
        (&lost, &lost_endpoint, &held[0]),
        (&n1, &stale_endpoint, &held[1]),
    ] {
        call(
            "/NetworkDriver.CreateEndpoint",
            json!({"NetworkID": network, "EndpointID": id, "Interface": {"Address": ip}, "Options": {}}),
        );
    }
    Corruption {
        lost,
        lost_endpoint,
        stale_endpoint,
        held,
    }
}

#[test]
fn a_network_docker_answers_404_for_makes_repair_free_nothing() {
    let lab = lab();
    let socket = lab.socket("h3");
    let call = |path: &str, body: Value| http::post_ok(&socket, path, &body);
    let clean = holdings(&lab, "h3");
    let c = corrupt_h3(&lab, &call);
    let corrupted = holdings(&lab, "h3");
    assert_eq!(corrupted.0.len(), clean.0.len() + 3, "{corrupted:?}");
    assert_eq!(corrupted.1.len(), clean.1.len() + 2, "{corrupted:?}");

    let unknown = format!(
        "Docker does not know network(s) {}: liveness unknown",
        c.lost
    );
    let refusal = "h3: liveness unknown, so no address or endpoint was judged and none was freed";
    for args in ["--host h3", "--repair --host h3"] {
        let (ok, report) = check(&lab, "h3", args);
        assert!(!ok, "{args}: {report}");
        assert!(
            report.contains(&unknown) && report.contains(refusal),
            "{args}: {report}"
        );
        for judged in [
            "leaked address",
            "stale endpoint",
            "repaired:",
            "agree with",
        ] {
            assert!(!report.contains(judged), "{args}: {judged:?} in\n{report}");
        }
        assert_eq!(holdings(&lab, "h3"), corrupted, "{args}");
    }
    let json = lab.sh("h3", "tabby ipam check --host h3 --grace 0 -o json");
    let findings = &serde_json::from_str::<Value>(&json).unwrap()["findings"];
    assert_eq!(findings["unknown_networks"], json!([c.lost]), "{json}");
    assert_eq!(findings["docker_unknown"], true, "{json}");
    assert!(lab.pings("h3", "h3a", &ip(&lab, "h1a")), "h3a -> h1a");

    // Without the lost network's records (as its DeleteNetwork would have
    // left it), liveness is known again: the same repair frees the three.
    call(
        "/NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": c.lost, "EndpointID": c.lost_endpoint}),
    );
    call("/NetworkDriver.DeleteNetwork", json!({"NetworkID": c.lost}));
    let (ok, report) = check(&lab, "h3", "--repair --host h3");
    assert!(ok, "{report}");
    for freed in &c.held {
        let line = format!("released {} ", freed.trim_end_matches("/32"));
        assert!(report.contains(&line), "{line:?} not in\n{report}");
    }
    let removed = format!("removed endpoint {}", &c.stale_endpoint[..12]);
    assert!(report.contains(&removed), "{report}");
    assert_eq!(holdings(&lab, "h3"), clean);
    let (ok, report) = check(&lab, "h3", "--host h3");
    assert!(ok && report.contains("agree with Docker"), "{report}");
    assert!(lab.pings("h3", "h3a", &ip(&lab, "h1a")), "h3a -> h1a");
}
