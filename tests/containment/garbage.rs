//! Garbage under every key prefix: skipped and reported, and shows, Join
//! and routing carry on.

use std::collections::BTreeSet;

use serde_json::Value;

use super::support::{Lab, eventually, stderr, stdout};
use super::{HOSTS, Undo, WAIT, all_reach, etcdctl, lab, run};
/// Every prefix tabby lists records under (`src/store/keys.rs`).
const PREFIXES: [&str; 13] = [
    "pools/",
    "blocks/",
    "networks/",
    "endpoints/h1/",
    "nodes/",
    "nodestatus/",
    "policystatus/",
    "profiles/",
    "exposures/",
    "netdefs/",
    "netstatus/na/",
    "mysql/",
    "mysqldecl/",
];

/// Undecodable, and decodable as JSON but of the wrong shape.
const GARBAGE: [(&str, &str); 2] = [("zz-not-json", "{not json"), ("zz-wrong-shape", "[1,2]")];

/// Read-only commands that list records (with `mysql status`, whose
/// password file `shows_skip` makes).
const SHOWS: [&str; 11] = [
    "pool show",
    "node show",
    "endpoint show --detailed",
    "ipam show",
    "profile show --detailed",
    "network show",
    "expose show",
    "mysql cluster show",
    "profile A rule show",
    "ipam show --ip 198.18.64.1",
    "mysql server-id cg1",
];

/// Runs every show command (table and JSON) on `host`: each must succeed
/// and print parseable JSON; returns the keys they warned about.
fn shows_skip(lab: &Lab, host: &str) -> BTreeSet<String> {
    let password = lab.dir().join("contain-root-password");
    std::fs::write(&password, "unused\n").unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let status = format!("mysql status --root-password-file {}", password.display());
    let mut warned = BTreeSet::new();
    for show in SHOWS.iter().copied().chain([status.as_str()]) {
        for format in ["table", "json"] {
            let command = format!("tabby {show} -o {format}");
            let out = lab.run(host, &["sh", "-c", &command]);
            let err = stderr(&out);
            assert!(out.status.success(), "`{command}` failed: {err}");
            if format == "json" {
                let parsed: Result<Value, _> = serde_json::from_str(&stdout(&out));
                assert!(parsed.is_ok(), "`{command}` printed: {}", stdout(&out));
            }
            warned.extend(err.lines().filter_map(|l| {
                let key = l.strip_prefix("warning: skipped record ")?;
                Some(key.split(':').next()?.to_string())
            }));
        }
    }
    warned
}

#[test]
fn garbage_under_every_prefix_leaves_shows_join_and_routing_working() {
    let lab = lab();
    let mut undo = Undo::new(&lab);
    let mut containers = vec![("h1", "cg1", run(&lab, "h1", "cg1", "na"))];
    undo.push("h1", "docker rm -f cg1".into());
    let keys: Vec<String> = PREFIXES
        .iter()
        .flat_map(|p| {
            GARBAGE
                .iter()
                .map(move |(name, _)| format!("/tabby/{p}{name}"))
        })
        .collect();
    for key in &keys {
        undo.push("h1", format!("ETCDCTL_API=3 etcdctl del {key}"));
    }
    for prefix in PREFIXES {
        for (name, value) in GARBAGE {
            etcdctl(&lab, &format!("put /tabby/{prefix}{name} '{value}'"));
        }
    }

    // Shows carry on and name every bad key, on any host.
    let warned = shows_skip(&lab, "h2");
    let missing: Vec<&String> = keys.iter().filter(|k| !warned.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "never reported: {missing:?} (got {warned:?})"
    );

    // Join and routing carry on: new containers on every host reach all.
    for (host, name) in [("h2", "cg2"), ("h3", "cg3")] {
        containers.push((host, name, run(&lab, host, name, "na")));
        undo.push(host, format!("docker rm -f {name}"));
    }
    all_reach(&lab, &containers);
    for host in HOSTS {
        eventually(
            WAIT,
            &format!("{host}'s agent to log a skipped record"),
            || lab.agent_log(host).contains("skipped record").then_some(()),
        );
    }

    // Gone again, nothing is reported.
    for key in &keys {
        etcdctl(&lab, &format!("del {key}"));
    }
    assert_eq!(shows_skip(&lab, "h3"), BTreeSet::new());
    assert!(lab.pings("h3", "cg3", &containers[0].2));
}

/// One endpoint's record corrupted: its container keeps its veth but no
/// traffic (never routed to, dropped), the others carry on, and fixing the
/// record brings it back.
#[test]
fn a_corrupt_endpoint_record_quarantines_only_its_container() {
    let lab = lab();
    let mut undo = Undo::new(&lab);
    let mut containers = Vec::new();
    for (host, name) in [("h1", "cq1"), ("h2", "cq2"), ("h3", "cq3")] {
        containers.push((host, name, run(&lab, host, name, "na")));
        undo.push(host, format!("docker rm -f {name}"));
    }
    all_reach(&lab, &containers);
    let id = lab.sh(
        "h1",
        "docker inspect -f '{{range .NetworkSettings.Networks}}{{.EndpointID}}{{end}}' cq1",
    );
    let key = format!("/tabby/endpoints/h1/{}", id.trim());
    let record = etcdctl(&lab, &format!("get --print-value-only {key}"));
    let record = record.trim();
    assert!(
        record.starts_with('{') && !record.contains('\''),
        "{record}"
    );
    undo.push("h1", format!("ETCDCTL_API=3 etcdctl put {key} '{record}'"));
    etcdctl(&lab, &format!("put {key} '{{not json'"));

    let veth = format!("tabby{}", &id.trim()[..10]);
    let (cq1, cq3) = (&containers[0].2, &containers[2].2);
    eventually(WAIT, "cq1 to lose its traffic", || {
        (!lab.pings("h2", "cq2", cq1) && !lab.pings("h1", "cq1", cq3)).then_some(())
    });
    assert!(lab.pings("h2", "cq2", cq3), "the others still reach");
    assert!(
        lab.try_sh("h1", &format!("ip link show dev {veth}")),
        "cq1 keeps its veth"
    );

    etcdctl(&lab, &format!("put {key} '{record}'"));
    eventually(WAIT, "cq1 back once its record is fixed", || {
        (lab.pings("h2", "cq2", cq1) && lab.pings("h1", "cq1", cq3)).then_some(())
    });
}
