use chrono::Utc;

use super::*;
use crate::model::{BgpConfig, BgpPeer, NodeBgp};

fn node(name: &str, ip: &str) -> Node {
    Node {
        hostname: name.into(),
        ip: ip.parse().unwrap(),
        started: Utc::now(),
        version: "t".into(),
        subnet: None,
        vxlan_mac: None,
        ip6: None,
    }
}

fn nodes() -> Vec<Node> {
    vec![
        node("h1", "198.18.0.11"),
        node("h2", "198.18.0.12"),
        node("h3", "198.18.0.13"),
    ]
}

fn view<'a>(host: &'a str, settings: &'a BgpSettings, nodes: &'a [Node]) -> BgpView<'a> {
    BgpView {
        host,
        settings,
        nodes,
        pools: &[],
        own_blocks: &[],
        hold_time: 30,
    }
}

fn kinds(sessions: &[Session]) -> Vec<(String, SessionKind, bool)> {
    sessions
        .iter()
        .map(|s| (s.peer.to_string(), s.kind, s.rr_client))
        .collect()
}

#[test]
fn the_mesh_joins_every_other_node() {
    let settings = BgpSettings::default();
    let nodes = nodes();
    let got = sessions(&view("h1", &settings, &nodes));
    assert_eq!(
        kinds(&got),
        [
            ("198.18.0.12".into(), SessionKind::Mesh, false),
            ("198.18.0.13".into(), SessionKind::Mesh, false)
        ]
    );
    assert_eq!(got[0].protocol_name(), "mesh_198_18_0_12");
    assert_eq!(
        SessionKind::parse_protocol("mesh_198_18_0_12"),
        Some((SessionKind::Mesh, got[0].peer))
    );
}

#[test]
fn with_a_reflector_and_the_mesh_off_clients_peer_only_with_it() {
    let mut settings = BgpSettings {
        config: BgpConfig {
            default_as: None,
            mesh: false,
        },
        ..Default::default()
    };
    settings.nodes.insert(
        "h1".into(),
        NodeBgp {
            asn: None,
            route_reflector: Some("1.1.1.1".parse().unwrap()),
        },
    );
    let nodes = nodes();
    let h1 = sessions(&view("h1", &settings, &nodes));
    assert_eq!(
        kinds(&h1),
        [
            ("198.18.0.12".into(), SessionKind::Reflector, true),
            ("198.18.0.13".into(), SessionKind::Reflector, true)
        ]
    );
    assert!(
        h1.iter()
            .all(|s| s.cluster_id == Some("1.1.1.1".parse().unwrap()))
    );
    let h2 = sessions(&view("h2", &settings, &nodes));
    assert_eq!(
        kinds(&h2),
        [("198.18.0.11".into(), SessionKind::Reflector, false)]
    );
}

#[test]
fn a_nodes_own_peer_replaces_a_global_one_and_nodes_are_never_peers() {
    let mut settings = BgpSettings::default();
    settings.config.mesh = false;
    settings.peers = vec![
        BgpPeer {
            ip: "198.18.0.1".parse().unwrap(),
            asn: 64513,
            node: None,
        },
        BgpPeer {
            ip: "198.18.0.1".parse().unwrap(),
            asn: 64600,
            node: Some("h2".into()),
        },
        BgpPeer {
            ip: "198.18.0.13".parse().unwrap(),
            asn: 64513,
            node: None,
        },
    ];
    let nodes = nodes();
    let h2 = sessions(&view("h2", &settings, &nodes));
    assert_eq!(h2.len(), 1);
    assert_eq!((h2[0].kind, h2[0].peer_as), (SessionKind::Node, 64600));
    let h1 = sessions(&view("h1", &settings, &nodes));
    assert_eq!((h1[0].kind, h1[0].peer_as), (SessionKind::Global, 64513));
}

#[test]
fn an_unregistered_host_gets_no_configuration() {
    let settings = BgpSettings::default();
    let nodes = nodes();
    assert!(render(&view("h9", &settings, &nodes)).is_none());
}

#[test]
fn the_configuration_names_pools_blocks_and_peers() {
    let mut settings = BgpSettings::default();
    settings.peers.push(BgpPeer {
        ip: "198.18.0.1".parse().unwrap(),
        asn: 64513,
        node: None,
    });
    let nodes = nodes();
    let pools = ["198.19.0.0/16".parse().unwrap()];
    let own = ["198.19.1.0/26".parse().unwrap()];
    let mut v = view("h1", &settings, &nodes);
    v.pools = &pools;
    v.own_blocks = &own;
    let text = render(&v).unwrap();
    for needle in [
        "router id 198.18.0.11;",
        "local 198.18.0.11 as 64512;",
        "if (net.type = NET_IP4 && net ~ [ 198.19.0.0/16 ]) || (net.type = NET_IP6 && false) then return false;",
        "return (net.type = NET_IP4 && net ~ [ 198.19.0.0/16+ ]) || (net.type = NET_IP6 && false);",
        "if (net.type = NET_IP4 && net ~ [ 198.19.1.0/26 ]) || (net.type = NET_IP6 && false) then accept;",
        "protocol bgp mesh_198_18_0_12 from tabby_peer",
        "protocol bgp global_198_18_0_1 from tabby_peer",
        "neighbor 198.18.0.1 as 64513;\n  allow local as;",
        "krt_source = 77",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(
        !text.contains("next hop address"),
        "no IPv6 address, no channel"
    );
}

#[test]
fn with_an_ipv6_address_ipv6_pools_ride_the_same_sessions() {
    let settings = BgpSettings::default();
    let mut nodes = nodes();
    nodes[0].ip6 = Some("2001:2::11".parse().unwrap());
    let pools = [
        "198.19.0.0/16".parse().unwrap(),
        "2001:2:0:1000::/56".parse().unwrap(),
    ];
    let own = ["2001:2:0:1000::40/122".parse().unwrap()];
    let mut v = view("h1", &settings, &nodes);
    v.pools = &pools;
    v.own_blocks = &own;
    let text = render(&v).unwrap();
    for needle in [
        "protocol kernel tabby_kernel6 {",
        "  ipv6 {\n    gateway recursive;\n    next hop address 2001:2::11;",
        "(net.type = NET_IP6 && net ~ [ 2001:2:0:1000::/56+ ])",
        "(net.type = NET_IP4 && false) || (net.type = NET_IP6 && net ~ [ 2001:2:0:1000::40/122 ])",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

/// BIRD itself parses what is rendered, where it is installed
/// (scripts/test installs it).
#[test]
fn bird_accepts_the_rendered_configuration() {
    if std::process::Command::new("bird")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no bird binary");
        return;
    }
    let mut settings = BgpSettings::default();
    settings.nodes.insert(
        "h1".into(),
        NodeBgp {
            asn: Some(64600),
            route_reflector: Some("1.1.1.1".parse().unwrap()),
        },
    );
    settings.peers.push(BgpPeer {
        ip: "198.18.0.1".parse().unwrap(),
        asn: 64513,
        node: Some("h1".into()),
    });
    let mut nodes = nodes();
    nodes[0].ip6 = Some("2001:2::11".parse().unwrap());
    for (pools, own) in [
        (vec![], vec![]),
        (
            vec!["198.19.0.0/16".parse().unwrap()],
            vec!["198.19.1.0/26".parse().unwrap()],
        ),
        (
            vec![
                "198.19.0.0/16".parse().unwrap(),
                "2001:2:0:1000::/56".parse().unwrap(),
            ],
            vec![
                "198.19.1.0/26".parse().unwrap(),
                "2001:2:0:1000::40/122".parse().unwrap(),
            ],
        ),
    ] {
        let mut v = view("h1", &settings, &nodes);
        v.pools = &pools;
        v.own_blocks = &own;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bird.conf");
        std::fs::write(&path, render(&v).unwrap()).unwrap();
        let out = std::process::Command::new("bird")
            .arg("-p")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&path).unwrap()
        );
    }
}
