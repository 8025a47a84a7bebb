//! A profile that cannot be applied, because its record fails its checks
//! or the kernel refuses its rules, fails closed; the others still attach.

use std::collections::BTreeSet;

use serde_json::Value;

use super::support::{Lab, eventually, stderr, stdout};
use super::{HOSTS, REFUSED_CIDR, Undo, WAIT, all_reach, etcdctl, lab, run};
/// B's record as if written past the CLI: one rule of 16 port slots.
fn invalid_b() -> String {
    let ports: Vec<String> = (5000..5016)
        .map(|p| format!("{{\"first\":{p},\"last\":{p}}}"))
        .collect();
    format!(
        "{{\"name\":\"B\",\"tags\":[\"B\"],\"inbound\":[{{\"action\":\"allow\",\"protocol\":\"tcp\",\"to\":{{\"ports\":[{}]}}}}],\"outbound\":[{{\"action\":\"allow\"}}]}}",
        ports.join(",")
    )
}

/// B as the driver creates it.
const VALID_B: &str = r#"{"name":"B","tags":["B"],"inbound":[{"action":"allow","from":{"tag":"B"}}],"outbound":[{"action":"allow"}]}"#;

fn profile_json(lab: &Lab, name: &str) -> Value {
    let shown: Value = serde_json::from_str(&lab.sh("h2", "tabby profile show -o json")).unwrap();
    shown
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no profile {name} in {shown}"))
}

fn failed_hosts(profile: &Value) -> BTreeSet<String> {
    profile["failures"]
        .as_object()
        .map(|f| f.keys().cloned().collect())
        .unwrap_or_default()
}

/// `profile show` marks B and K failed on every host, and says why.
fn assert_marked_failed(lab: &Lab) {
    let every: BTreeSet<String> = HOSTS.map(String::from).into();
    let (k, b) = eventually(WAIT, "B and K marked failed on every host", || {
        let (k, b) = (profile_json(lab, "K"), profile_json(lab, "B"));
        (failed_hosts(&k) == every && failed_hosts(&b) == every).then_some((k, b))
    });
    for host in HOSTS {
        let why = k["failures"][host].as_str().unwrap();
        assert!(why.starts_with("kernel refused: iptables-restore"), "{why}");
    }
    let why = b["invalid"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("invalid record:") && why.contains("16 slots"),
        "{b}"
    );
    let out = lab.run("h2", &["tabby", "profile", "show"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("| {name} ")))
            .unwrap_or_else(|| panic!("no row {name}: {table}"))
            .to_string()
    };
    assert!(row("A").contains("| ok"), "{table}");
    assert!(
        row("B").contains("FAILED (dropping): invalid record:"),
        "{table}"
    );
    assert!(
        row("K").contains("FAILED (dropping) on h1: kernel refused"),
        "{table}"
    );
    assert!(
        stderr(&out).contains("warning: skipped record /tabby/profiles/B:"),
        "{}",
        stderr(&out)
    );
    assert!(
        lab.agent_log("h2")
            .contains("kernel refused the profile's rules")
    );
}

#[test]
fn a_profile_that_cannot_be_applied_fails_closed_and_others_attach() {
    let lab = lab();
    let mut undo = Undo::new(&lab);
    let b1 = run(&lab, "h1", "cb1", "nb");
    let b2 = run(&lab, "h2", "cb2", "nb");
    let k1 = run(&lab, "h1", "ck1", "nk");
    let k3 = run(&lab, "h3", "ck3", "nk");
    for (host, name) in [("h1", "cb1"), ("h2", "cb2"), ("h1", "ck1"), ("h3", "ck3")] {
        undo.push(host, format!("docker rm -f {name}"));
    }
    eventually(WAIT, "B and K to reach their own", || {
        (lab.pings("h1", "cb1", &b2) && lab.pings("h3", "ck3", &k1)).then_some(())
    });

    // B's record fails its checks; K's rule passes them, the kernel refuses it.
    let mut fix = Undo::new(&lab);
    fix.push(
        "h1",
        format!("ETCDCTL_API=3 etcdctl put /tabby/profiles/B '{VALID_B}'"),
    );
    etcdctl(&lab, &format!("put /tabby/profiles/B '{}'", invalid_b()));
    lab.sh(
        "h1",
        &format!(
            "tabby profile K rule add inbound allow tcp from cidr {REFUSED_CIDR} to ports 3306"
        ),
    );
    fix.push("h1", "tabby profile K rule remove inbound 2".into());

    // Their endpoints fail closed, also towards each other.
    eventually(WAIT, "B and K endpoints to drop everything", || {
        (!lab.pings("h2", "cb2", &b1) && !lab.pings("h1", "ck1", &k3)).then_some(())
    });
    assert!(!lab.pings("h1", "cb1", &b2) && !lab.pings("h3", "ck3", &k1));
    // A new B container attaches and gets nothing either.
    lab.sh(
        "h3",
        "docker run -d --name cb3 --net nb tabby/busybox sleep 3600",
    );
    undo.push("h3", "docker rm -f cb3".into());
    assert!(!lab.pings("h3", "cb3", &b1));

    assert_marked_failed(&lab);

    // Beside them, with both failed everywhere, A attaches on every host
    // and routes across all three.
    let mut a = Vec::new();
    for (host, name) in [("h1", "ca1"), ("h2", "ca2"), ("h3", "ca3")] {
        a.push((host, name, run(&lab, host, name, "na")));
        undo.push(host, format!("docker rm -f {name}"));
    }
    all_reach(&lab, &a);

    // Fixed, both apply again: what blocked them was their failure.
    drop(fix);
    eventually(WAIT, "B and K to reach each other again", || {
        (lab.pings("h2", "cb2", &b1) && lab.pings("h1", "ck1", &k3)).then_some(())
    });
    eventually(WAIT, "no profile marked failed", || {
        ["B", "K"]
            .iter()
            .all(|p| failed_hosts(&profile_json(&lab, p)).is_empty())
            .then_some(())
    });
}
