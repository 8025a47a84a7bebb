//! `tabby bgp …` and `tabby node H bgp …` against a real etcd: every
//! refused command exits non-zero with one line naming the bad value and
//! leaves etcd's revision where it was; accepted ones show in the listings.
//! No root needed: only etcd and the tabby binary run.

mod support;

use std::process::Output;

use serde_json::Value;
use support::{Etcd, stderr, stdout};
use tabby::model::{BgpStatus, Node};
use tabby::store::{EtcdOptions, Store};

struct Cluster {
    etcd: Etcd,
    runtime: tokio::runtime::Runtime,
    store: Store,
}

impl Cluster {
    /// Nodes h1 (10.0.0.11) and h2 (10.0.0.12), both down (their agents
    /// stopped: records stay, leases are gone), pool 192.168.0.0/16, and a
    /// session count reported by h1.
    fn start() -> Cluster {
        let etcd = Etcd::start();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let options = EtcdOptions::plain(std::slice::from_ref(&etcd.endpoint));
        let store = runtime
            .block_on(Store::connect(&options, "/tabby"))
            .unwrap();
        runtime.block_on(async {
            for (host, ip) in [("h1", "10.0.0.11"), ("h2", "10.0.0.12")] {
                let node = Node {
                    hostname: host.into(),
                    ip: ip.parse().unwrap(),
                    started: chrono::Utc::now(),
                    version: "test".into(),
                    subnet: None,
                    vxlan_mac: None,
                    ip6: None,
                };
                store
                    .register_node(&node, 10)
                    .await
                    .unwrap()
                    .release()
                    .await;
            }
            let status = BgpStatus {
                established: 1,
                configured: 2,
                established6: 1,
                updated: chrono::Utc::now(),
            };
            store.put_bgp_status("h1", &status).await.unwrap();
        });
        let cluster = Cluster {
            etcd,
            runtime,
            store,
        };
        cluster.ok(&["pool", "add", "192.168.0.0/16"]);
        cluster
    }

    fn tabby(&self, args: &[&str]) -> Output {
        std::process::Command::new(support::tabby_bin())
            .args(["--etcd-endpoints", &self.etcd.endpoint])
            .args(args)
            .env_remove("TABBY_ETCD_PREFIX")
            .output()
            .expect("tabby runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.tabby(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    fn revision(&self) -> i64 {
        self.runtime.block_on(self.store.revision()).unwrap()
    }

    /// Runs a command that must be refused, with `expected` in its one
    /// line of error, without writing anything.
    fn refused(&self, args: &[&str], expected: &str) {
        let before = self.revision();
        let out = self.tabby(args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert_eq!(self.revision(), before, "{args:?} wrote to etcd");
    }
}

/// Each refused command and what its error says.
const REFUSED: &[(&[&str], &str)] = &[
    (&["bgp", "default-as", "0"], "0 is reserved"),
    (&["bgp", "default-as", "65535"], "65535 is reserved"),
    (&["bgp", "default-as", "23456"], "23456 is reserved"),
    (&["bgp", "default-as", "1.10"], "invalid AS number \"1.10\""),
    (&["bgp", "default-as", "-5"], "invalid AS number \"-5\""),
    (&["bgp", "default-as", "4294967296"], "\"4294967296\""),
    (
        &["bgp", "mesh", "maybe"],
        "mesh is on or off, not \"maybe\"",
    ),
    (
        &["bgp", "peer", "add", "127.0.0.1", "--as", "64500"],
        "127.0.0.1 is not a unicast address",
    ),
    (
        &["bgp", "peer", "add", "255.255.255.255", "--as", "64500"],
        "255.255.255.255 is not a unicast address",
    ),
    (
        &["bgp", "peer", "add", "10.0.0.256", "--as", "64500"],
        "\"10.0.0.256\": not an IPv4 address",
    ),
    (
        &["bgp", "peer", "add", "10.0.0.2", "--as", "abc"],
        "invalid AS number \"abc\"",
    ),
    (
        &["bgp", "peer", "add", "10.0.0.2", "--as", "65535"],
        "65535 is reserved",
    ),
    (
        &["bgp", "peer", "add", "192.168.7.1", "--as", "64500"],
        "192.168.7.1: it is inside tabby pool 192.168.0.0/16",
    ),
    (
        &["bgp", "peer", "add", "10.0.0.12", "--as", "64500"],
        "10.0.0.12: is node h2's address: the mesh/reflectors peer with nodes",
    ),
    (
        &[
            "bgp",
            "peer",
            "add",
            "10.0.0.11",
            "--as",
            "64500",
            "--node",
            "h2",
        ],
        "is node h1's address",
    ),
    (
        &[
            "bgp", "peer", "add", "10.0.0.2", "--as", "64500", "--node", "h9",
        ],
        "no node h9",
    ),
    (
        &["bgp", "peer", "remove", "10.0.0.99"],
        "no BGP peer 10.0.0.99 (global)",
    ),
    (
        &["bgp", "peer", "remove", "10.0.0.1", "--node", "h1"],
        "no BGP peer 10.0.0.1 of node h1",
    ),
    (
        &["bgp", "peer", "remove", "10.0.0.1", "--node", "h9"],
        "no node h9",
    ),
    (&["node", "h9", "bgp", "as", "64513"], "no node h9"),
    (&["node", "h1", "bgp", "as", "65535"], "65535 is reserved"),
    (&["node", "h1", "bgp", "as", "1.10"], "\"1.10\""),
    (&["node", "h1", "bgp", "as"], "give the node's AS number"),
    (
        &[
            "node",
            "h1",
            "bgp",
            "route-reflector",
            "--cluster-id",
            "1.0.0.1",
            "--off",
        ],
        "a cluster ID on a node that is not a reflector",
    ),
    (
        &["node", "h1", "bgp", "route-reflector"],
        "needs --cluster-id A.B.C.D",
    ),
    (
        &[
            "node",
            "h1",
            "bgp",
            "route-reflector",
            "--cluster-id",
            "0.0.0.0",
        ],
        "0.0.0.0 is not a cluster ID",
    ),
    (
        &[
            "node",
            "h1",
            "bgp",
            "route-reflector",
            "--cluster-id",
            "1.2.3",
        ],
        "invalid cluster ID \"1.2.3\"",
    ),
    (
        &[
            "node",
            "h9",
            "bgp",
            "route-reflector",
            "--cluster-id",
            "1.0.0.1",
        ],
        "no node h9",
    ),
];

#[test]
fn invalid_commands_are_refused_and_change_nothing() {
    let c = Cluster::start();
    // Something to remove by mistake, and a reflector to switch wrongly.
    c.ok(&["bgp", "peer", "add", "10.0.0.1", "--as", "64500"]);
    for (args, expected) in REFUSED {
        c.refused(args, expected);
    }
    // Usage mistakes are clap's: exit 2, nothing written.
    let before = c.revision();
    for args in [
        &["node", "h1", "bgp", "frobnicate"][..],
        &["node", "h1", "bgp", "as", "1", "--inherit"],
        &["bgp", "peer", "add", "10.0.0.2"],
    ] {
        assert_eq!(c.tabby(args).status.code(), Some(2), "{args:?}");
    }
    assert_eq!(c.revision(), before);
    let peers = c.json(&["bgp", "peer", "show"]);
    assert_eq!(peers.as_array().unwrap().len(), 1, "{peers}");
}

#[test]
fn cluster_settings_and_peers_show_up() {
    let c = Cluster::start();
    assert_eq!(c.ok(&["bgp", "default-as"]).trim(), "64512 (default)");
    let default = c.json(&["bgp", "default-as"]);
    assert_eq!(default["default_as"], 64512);
    assert_eq!(default["inherited_default"], true);
    assert!(c.ok(&["bgp", "mesh"]).contains("on"));
    assert_eq!(c.json(&["bgp", "mesh"])["mesh"], true);

    c.ok(&["bgp", "default-as", "64600"]);
    c.ok(&["bgp", "mesh", "off"]);
    assert_eq!(c.ok(&["bgp", "default-as"]).trim(), "64600");
    let default = c.json(&["bgp", "default-as"]);
    assert_eq!(default["default_as"], 64600);
    assert_eq!(default["inherited_default"], false);
    assert_eq!(c.json(&["bgp", "mesh"])["mesh"], false);
    // Setting what is already set writes nothing.
    let before = c.revision();
    assert!(c.ok(&["bgp", "default-as", "64600"]).contains("already"));
    assert!(c.ok(&["bgp", "mesh", "off"]).contains("already"));
    assert_eq!(c.revision(), before);

    c.ok(&["bgp", "peer", "add", "10.0.0.1", "--as", "64500"]);
    c.ok(&[
        "bgp", "peer", "add", "10.0.0.2", "--as", "64501", "--node", "h1",
    ]);
    let changed = c.ok(&["bgp", "peer", "add", "10.0.0.1", "--as", "64502"]);
    assert!(changed.contains("from 64500 to 64502"), "{changed}");
    let peers = c.json(&["bgp", "peer", "show"]);
    assert_eq!(
        peers,
        serde_json::json!([
            {"scope": "global", "node": null, "ip": "10.0.0.1", "as": 64502},
            {"scope": "node", "node": "h1", "ip": "10.0.0.2", "as": 64501},
        ])
    );
    let table = c.ok(&["bgp", "peer", "show"]);
    for word in ["SCOPE", "PEER ADDRESS", "AS NUM", "| global ", "| node h1 "] {
        assert!(table.contains(word), "{table}");
    }
    c.ok(&["bgp", "peer", "remove", "10.0.0.2", "--node", "h1"]);
    let peers = c.json(&["bgp", "peer", "show"]);
    assert_eq!(peers.as_array().unwrap().len(), 1, "{peers}");
}

/// The node named `host` in `node show -o json`.
fn node(c: &Cluster, host: &str) -> Value {
    let nodes = c.json(&["node", "show"]);
    nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["hostname"] == host)
        .cloned()
        .unwrap_or_else(|| panic!("no {host} in {nodes}"))
}

#[test]
fn node_settings_show_in_node_show() {
    let c = Cluster::start();
    let h2 = node(&c, "h2");
    assert_eq!(
        (&h2["as"], &h2["as_inherited"]),
        (&64512.into(), &true.into())
    );
    assert_eq!(h2["route_reflector"], Value::Null);
    assert_eq!(h2["bgp_peers"], Value::Null);
    let h1 = node(&c, "h1");
    assert_eq!(
        h1["bgp_peers"],
        serde_json::json!({"established": 1, "configured": 2})
    );

    c.ok(&["node", "h1", "bgp", "as", "64513"]);
    c.ok(&[
        "node",
        "h1",
        "bgp",
        "route-reflector",
        "--cluster-id",
        "1.0.0.1",
    ]);
    let h1 = node(&c, "h1");
    assert_eq!(
        (&h1["as"], &h1["as_inherited"]),
        (&64513.into(), &false.into())
    );
    assert_eq!(h1["route_reflector"], "1.0.0.1");
    let table = c.ok(&["node", "show"]);
    for word in [
        "AS NUM",
        "BGP PEERS",
        "| 64513 ",
        "| 64512 (inherited) ",
        "| 1/2 ",
        "BGP PEERS V6",
    ] {
        assert!(table.contains(word), "{table}");
    }
    // The default AS moves the nodes that inherit it, not h1.
    c.ok(&["bgp", "default-as", "64600"]);
    assert_eq!(node(&c, "h2")["as"], 64600);
    assert_eq!(node(&c, "h1")["as"], 64513);

    c.ok(&["node", "h1", "bgp", "as", "inherit"]);
    c.ok(&["node", "h1", "bgp", "route-reflector", "--off"]);
    let h1 = node(&c, "h1");
    assert_eq!(
        (&h1["as"], &h1["as_inherited"]),
        (&64600.into(), &true.into())
    );
    assert_eq!(h1["route_reflector"], Value::Null);
    c.ok(&["node", "h2", "bgp", "as", "64514"]);
    c.ok(&["node", "h2", "bgp", "as", "--inherit"]);
    assert_eq!(node(&c, "h2")["as_inherited"], true);

    // The commands that were there keep working.
    c.ok(&["node", "remove", "h2"]);
    let nodes = c.json(&["node", "show"]);
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
}

#[test]
fn status_reads_the_local_bird_not_etcd() {
    let dir = tempfile::tempdir().unwrap();
    // No etcd at all: status must not need it.
    let out = std::process::Command::new(support::tabby_bin())
        .args(["--etcd-endpoints", "http://127.0.0.1:9", "bgp", "status"])
        .arg("--bird-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    // No BIRD runs there: a clear failure, not a hang or an etcd error.
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(!err.contains("127.0.0.1:9"), "{err}");
    assert!(err.starts_with("Error: "), "{err}");
}
