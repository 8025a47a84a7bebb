//! What an operator sees, in a three-host lab whose agents serve metrics
//! on 127.0.0.1:9091 of their host: the Join counter and the endpoint
//! gauge follow `docker run`s, the text parses as Prometheus text format,
//! `/readyz` and `tabby status` turn unhealthy with the etcd quorum lost
//! and healthy again when it returns, and a failed Join's reason reaches
//! the agent's log.

mod support;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use support::{Lab, eventually, shared_lab, stderr, stdout};

const LISTEN: &str = "127.0.0.1:9091";

/// Tests that stop etcd must not overlap the others.
static SERIAL: Mutex<()> = Mutex::new(());

fn lab() -> (MutexGuard<'static, ()>, Arc<Lab>) {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = shared_lab(|| {
        let lab = Lab::up_with(3, &[("TABBY_METRICS_LISTEN", LISTEN)]);
        lab.import_image("busybox", &["h1"]);
        lab.sh("h1", "tabby network create obs --subnet 198.19.64.0/20");
        lab
    });
    (serial, lab)
}

/// An HTTP GET inside a lab host: (status, body).
fn get(lab: &Lab, host: &str, path: &str) -> (u16, String) {
    let out = lab.run(
        host,
        &[
            "curl",
            "-s",
            "-m",
            "5",
            "-w",
            "\n%{http_code}",
            &format!("http://{LISTEN}{path}"),
        ],
    );
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// One sample's value, by metric name and labels, from parsed text.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref buckets) => {
                buckets.last().map_or(0.0, |b| b.count)
            }
            _ => 0.0,
        })
        .sum()
}

fn joins(lab: &Lab) -> f64 {
    let (code, text) = get(lab, "h1", "/metrics");
    assert_eq!(code, 200, "{text}");
    sample(
        &text,
        "tabby_plugin_call_duration_seconds_count",
        &[("call", "NetworkDriver.Join"), ("result", "ok")],
    )
}

fn local_endpoints(lab: &Lab) -> f64 {
    sample(&get(lab, "h1", "/metrics").1, "tabby_local_endpoints", &[])
}

#[test]
fn metrics_follow_docker_runs_and_parse_as_prometheus_text() {
    let (_serial, lab) = lab();
    let before = joins(&lab);
    for i in 0..3 {
        lab.sh(
            "h1",
            &format!("docker run -d --name m{i} --net obs tabby/busybox sleep 3600"),
        );
    }
    assert_eq!(joins(&lab) - before, 3.0);
    eventually(Duration::from_secs(30), "3 local endpoints", || {
        (local_endpoints(&lab) == 3.0).then_some(())
    });
    let (_, text) = get(&lab, "h1", "/metrics");
    for name in [
        "tabby_firewall_apply_duration_seconds_count",
        "tabby_route_sync_duration_seconds_count",
        "tabby_etcd_request_duration_seconds_count",
        "tabby_resyncs_total",
        "tabby_nodes_up",
    ] {
        assert!(sample(&text, name, &[]) > 0.0, "{name} in:\n{text}");
    }
    assert_eq!(sample(&text, "tabby_nodes_up", &[]), 3.0);
    // Three endpoints' chains and rules, and their addresses in tag sets
    // (set once the firewall pass that follows the gauge is applied).
    eventually(Duration::from_secs(30), "the firewall's objects", || {
        let text = get(&lab, "h1", "/metrics").1;
        let programmed = |kind| sample(&text, "tabby_firewall_programmed", &[("kind", kind)]);
        (programmed("chains") >= 6.0
            && programmed("rules") > programmed("chains")
            && programmed("set_members") >= 3.0)
            .then_some(())
    });
    assert!(
        sample(
            &text,
            "tabby_pool_addresses_allocated",
            &[("pool", "198.19.64.0/20")]
        ) >= 3.0,
        "{text}"
    );
    // No endpoint or container ID is a label.
    assert!(!text.contains("m0") && !text.contains("EndpointID"));
    lab.sh("h1", "docker rm -f m0 m1 m2");
    eventually(Duration::from_secs(30), "no local endpoints", || {
        (local_endpoints(&lab) == 0.0).then_some(())
    });
}

/// Starts the stopped etcd members again even when an assertion fails,
/// so the tests after this one find a quorum.
struct EtcdBack<'a>(&'a Lab);

impl Drop for EtcdBack<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for host in ["h2", "h3"] {
                let _ = self.0.command(&["start", host, "etcd"]).output();
            }
        }
    }
}

#[test]
fn readiness_and_status_follow_the_etcd_quorum() {
    let (_serial, lab) = lab();
    eventually(Duration::from_secs(30), "h1 ready", || {
        (get(&lab, "h1", "/readyz").0 == 200).then_some(())
    });
    assert_eq!(get(&lab, "h1", "/livez").0, 200);
    let status = lab.run("h1", &["tabby", "status"]);
    assert!(
        status.status.success(),
        "{}{}",
        stdout(&status),
        stderr(&status)
    );
    let text = stdout(&status);
    assert!(text.contains("ready:      yes"), "{text}");
    assert!(text.contains("last synced"), "{text}");
    // Each of the three etcd members, asked on its own; one leads.
    let members: Vec<&str> = text.lines().filter(|l| l.contains("  member ")).collect();
    assert_eq!(members.len(), 3, "{text}");
    assert!(members.iter().all(|l| l.contains(": healthy")), "{text}");
    assert_eq!(text.matches(", leader,").count(), 1, "{text}");

    // Two of three etcd members gone: no quorum.
    let _restart = EtcdBack(&lab);
    lab.stop("h2", "etcd");
    lab.stop("h3", "etcd");
    let reason = eventually(Duration::from_secs(30), "h1 not ready", || {
        let (code, body) = get(&lab, "h1", "/readyz");
        (code == 503).then_some(body)
    });
    assert!(reason.contains("etcd"), "{reason}");
    assert_eq!(get(&lab, "h1", "/livez").0, 200, "alive while not ready");
    let status = lab.run("h1", &["tabby", "status"]);
    assert!(!status.status.success());
    assert!(
        stderr(&status).contains("unhealthy") && stderr(&status).contains("etcd"),
        "{}",
        stderr(&status)
    );
    // The two members down are named as such; h1's own answers that it
    // has no leader.
    let text = stdout(&status);
    let member = |ip: &str| {
        text.lines()
            .find(|l| l.contains("  member ") && l.contains(ip))
            .unwrap_or_else(|| panic!("no member {ip} in {text}"))
    };
    for ip in ["198.18.0.12", "198.18.0.13"] {
        assert!(member(ip).contains("UNHEALTHY"), "{text}");
        assert!(member(ip).contains("refused"), "{text}");
    }
    assert!(member("198.18.0.11").contains("no leader"), "{text}");

    lab.start("h2", "etcd");
    lab.start("h3", "etcd");
    eventually(Duration::from_secs(60), "h1 ready again", || {
        (get(&lab, "h1", "/readyz").0 == 200).then_some(())
    });
    let status = lab.run("h1", &["tabby", "status"]);
    assert!(status.status.success(), "{}", stderr(&status));
}

#[test]
fn a_failed_join_is_logged_with_its_reason_and_ids() {
    let (_serial, lab) = lab();
    let endpoint = "e".repeat(64);
    let body = format!(
        r#"{{"NetworkID":"{}","EndpointID":"{endpoint}","SandboxKey":"/var/run/docker/netns/x"}}"#,
        "f".repeat(64)
    );
    let answer = support::http::post(&lab.socket("h1"), "/NetworkDriver.Join", body.as_bytes());
    assert_eq!(answer.status, 500);
    let reason = answer.json()["Err"].as_str().unwrap().to_string();
    assert!(!reason.is_empty());
    eventually(
        Duration::from_secs(10),
        "the failed Join in the log",
        || {
            lab.agent_log("h1")
                .lines()
                .find(|l| {
                    l.contains("WARN")
                        && l.contains("plugin call failed")
                        && l.contains("NetworkDriver.Join")
                        && l.contains(&endpoint)
                        && l.contains(&reason)
                })
                .map(|_| ())
        },
    );
    // `tabby status` shows it among the last warnings, with its reason.
    let status = lab.run("h1", &["tabby", "status", "-o", "json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    let recent = status["agent"]["recent_errors"].as_array().unwrap();
    assert!(
        recent.iter().any(|e| e[1] == "WARN"
            && e[2].as_str().unwrap().contains("plugin call failed")
            && e[2].as_str().unwrap().contains(&reason)),
        "{recent:?}"
    );
    // The call counts as an error.
    let (_, text) = get(&lab, "h1", "/metrics");
    assert!(
        sample(
            &text,
            "tabby_plugin_call_duration_seconds_count",
            &[("call", "NetworkDriver.Join"), ("result", "error")]
        ) >= 1.0
    );
}

#[test]
fn a_plain_docker_network_is_named_and_so_is_its_profile() {
    let (_serial, lab) = lab();
    lab.sh("h1", "tabby pool add 198.19.80.0/20");
    let id = lab
        .sh(
            "h1",
            "docker network create -d tabby --ipam-driver tabby --subnet 198.19.80.0/20 plainnet",
        )
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    eventually(Duration::from_secs(30), "a profile named plainnet", || {
        let shown = lab.sh("h1", "tabby profile show");
        (shown.contains("plainnet") && !shown.contains(&id)).then_some(())
    });
    for name in ["pn1", "pn2"] {
        lab.sh(
            "h1",
            &format!("docker run -d --name {name} --net plainnet tabby/busybox sleep 3600"),
        );
    }
    let endpoints: serde_json::Value =
        serde_json::from_str(&lab.sh("h1", "tabby endpoint show -o json")).unwrap();
    let ours: Vec<_> = endpoints
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["network_id"] == id.as_str())
        .collect();
    assert_eq!(ours.len(), 2);
    for e in &ours {
        assert_eq!(e["profiles"], serde_json::json!(["plainnet"]), "{e}");
    }
    // The table names the network and the containers, as `docker ps` does.
    let table = lab.sh("h1", "tabby endpoint show");
    assert!(
        table.contains("plainnet") && table.contains("pn1") && !table.contains(&id),
        "{table}"
    );
    assert!(lab.sh("h1", "tabby endpoint show --wide").contains(&id));
    // One profile: its members reach each other.
    let ip = lab.network_ip("h1", "pn2", "plainnet");
    assert!(lab.pings("h1", "pn1", &ip));
    lab.sh("h1", "docker rm -f pn1 pn2");
}

#[test]
fn json_logs_are_json_lines_and_never_hold_a_password() {
    use std::os::unix::fs::PermissionsExt;
    let (_serial, lab) = lab();
    let secret = "obs-Secret-7f3c9e";
    let file = lab.dir().join("mysql-root-password");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The old agent's last lines (text) come before the measure.
    lab.stop("h1", "agent");
    let before = lab.agent_log("h1").len();
    // As verbose as it gets, with a password the agent holds.
    lab.restart_agent(
        "h1",
        &[
            ("TABBY_LOG_FORMAT", "json"),
            ("RUST_LOG", "trace"),
            ("TABBY_MYSQL_ROOT_PASSWORD_FILE", file.to_str().unwrap()),
        ],
    );
    lab.sh(
        "h1",
        "docker run -d --name j1 --net obs tabby/busybox sleep 3600 && docker rm -f j1",
    );
    let log = lab.agent_log("h1")[before..].to_string();
    lab.restart_agent("h1", &[]);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let levels: std::collections::BTreeSet<&str> =
        lines.iter().filter_map(|l| l["level"].as_str()).collect();
    assert!(
        levels.contains("DEBUG") && levels.contains("INFO"),
        "{levels:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "agent ready"),
        "{log}"
    );
    assert!(!log.contains(secret), "the password is in the log");
}
