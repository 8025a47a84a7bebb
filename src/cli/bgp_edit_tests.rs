use super::*;

use crate::ipam::Ipam;

/// A store with nodes h1 (10.0.0.11) and h2 (10.0.0.12) and the pool
/// 192.168.0.0/16.
async fn store() -> Store {
    let store = Store::in_memory();
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
        // The record stays after the lease goes, as a stopped agent's does.
        store
            .register_node(&node, 10)
            .await
            .unwrap()
            .release()
            .await;
    }
    Ipam::new(store.clone(), "test")
        .add_pool("192.168.0.0/16".parse().unwrap(), 26)
        .await
        .unwrap();
    store
}

/// Runs a refused change and returns its message, checking that nothing
/// was written.
async fn refused<T: std::fmt::Debug>(
    store: &Store,
    change: impl std::future::Future<Output = Result<T, Refused>>,
) -> String {
    let before = store.revision().await.unwrap();
    let err = change.await.expect_err("refused");
    assert_eq!(store.revision().await.unwrap(), before, "{err} wrote");
    err.to_string()
}

#[test]
fn as_numbers_are_plain_and_not_reserved() {
    assert_eq!(parse_as("64513").unwrap(), 64513);
    assert_eq!(parse_as("4294967294").unwrap(), 4_294_967_294);
    for bad in ["0", "23456", "65535", "4294967295"] {
        assert!(
            parse_as(bad).unwrap_err().to_string().contains(bad),
            "{bad}"
        );
    }
    for bad in ["", "1.10", "+5", "-1", "4294967296", "AS64512", "6e4"] {
        let err = parse_as(bad).unwrap_err().to_string();
        assert!(err.contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn cluster_ids_and_mesh_words() {
    assert_eq!(
        parse_cluster_id("1.0.0.1").unwrap(),
        Ipv4Addr::new(1, 0, 0, 1)
    );
    assert!(
        parse_cluster_id("0.0.0.0")
            .unwrap_err()
            .to_string()
            .contains("0.0.0.0")
    );
    for bad in ["1.2.3", "1.2.3.4.5", "cluster", "256.0.0.1"] {
        assert!(matches!(
            parse_cluster_id(bad),
            Err(Refused::NotAClusterId(_))
        ));
    }
    assert!(parse_mesh("on").unwrap());
    assert!(!parse_mesh("off").unwrap());
    assert!(
        parse_mesh("yes")
            .unwrap_err()
            .to_string()
            .contains("\"yes\"")
    );
}

#[tokio::test]
async fn default_as_and_mesh_are_stored_once() {
    let store = store().await;
    assert!(set_default_as(&store, "64600").await.unwrap());
    assert!(!set_default_as(&store, "64600").await.unwrap());
    assert!(set_mesh(&store, "off").await.unwrap());
    let config = store.bgp_config().await.unwrap();
    assert_eq!((config.default_as, config.mesh), (Some(64600), false));
    let msg = refused(&store, set_default_as(&store, "65535")).await;
    assert!(msg.contains("65535"), "{msg}");
    let msg = refused(&store, set_mesh(&store, "maybe")).await;
    assert!(msg.contains("maybe"), "{msg}");
    // Each setting keeps the other.
    assert!(set_mesh(&store, "on").await.unwrap());
    assert_eq!(store.bgp_config().await.unwrap().default_as, Some(64600));
}

#[tokio::test]
async fn peers_are_added_changed_and_removed() {
    let store = store().await;
    let add = |ip, asn, node| add_peer(&store, ip, asn, node);
    assert_eq!(
        add("10.0.0.1", "64500", None).await.unwrap(),
        PeerChange::Added
    );
    assert_eq!(
        add("10.0.0.1", "64500", None).await.unwrap(),
        PeerChange::Unchanged
    );
    assert_eq!(
        add("10.0.0.1", "64501", None).await.unwrap(),
        PeerChange::AsChanged { from: 64500 }
    );
    // The same router as a node peer of h1 is a second record.
    assert_eq!(
        add("10.0.0.1", "64501", Some("h1")).await.unwrap(),
        PeerChange::Added
    );
    assert_eq!(store.bgp_peers().await.unwrap().len(), 2);
    remove_peer(&store, "10.0.0.1", Some("h1")).await.unwrap();
    let msg = refused(&store, remove_peer(&store, "10.0.0.1", Some("h1"))).await;
    assert_eq!(msg, "no BGP peer 10.0.0.1 of node h1");
    remove_peer(&store, "10.0.0.1", None).await.unwrap();
    let msg = refused(&store, remove_peer(&store, "10.0.0.1", None)).await;
    assert_eq!(msg, "no BGP peer 10.0.0.1 (global)");
}

#[tokio::test]
async fn bad_peers_are_refused_before_anything_is_written() {
    let store = store().await;
    let cases = [
        ("127.0.0.1", "64500", None, "127.0.0.1 is not a unicast"),
        ("224.0.0.5", "64500", None, "224.0.0.5 is not a unicast"),
        ("169.254.1.1", "64500", None, "169.254.1.1 is not a unicast"),
        ("10.0.0", "64500", None, "\"10.0.0\": not an IPv4 address"),
        ("10.0.0.1", "0", None, "0 is reserved"),
        ("10.0.0.1", "x", None, "\"x\""),
        (
            "192.168.3.4",
            "64500",
            None,
            "inside tabby pool 192.168.0.0/16",
        ),
        ("10.0.0.12", "64500", None, "is node h2's address"),
        ("10.0.0.12", "64500", Some("h1"), "is node h2's address"),
        ("10.0.0.1", "64500", Some("h9"), "no node h9"),
    ];
    for (ip, asn, node, expected) in cases {
        let msg = refused(&store, add_peer(&store, ip, asn, node)).await;
        assert!(msg.contains(expected), "{ip} {asn} {node:?}: {msg}");
    }
    let msg = refused(&store, remove_peer(&store, "10.0.0.1", Some("h9"))).await;
    assert!(msg.contains("no node h9"), "{msg}");
    assert!(store.bgp_peers().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_removed_node_takes_its_peers_and_settings_with_it() {
    let store = store().await;
    add_peer(&store, "10.0.0.1", "64500", Some("h2"))
        .await
        .unwrap();
    add_peer(&store, "10.0.0.2", "64500", None).await.unwrap();
    assert!(set_node_as(&store, "h2", "64513").await.unwrap());
    store.delete_node("h2").await.unwrap();
    let left = store.bgp_peers().await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].node.is_none());
    assert!(store.bgp_nodes().await.unwrap().is_empty());
}

#[tokio::test]
async fn node_as_and_reflector_role() {
    let store = store().await;
    assert!(set_node_as(&store, "h1", "64513").await.unwrap());
    assert!(!set_node_as(&store, "h1", "64513").await.unwrap());
    assert!(
        set_route_reflector(&store, "h1", Some("1.0.0.1"), false)
            .await
            .unwrap()
    );
    let h1 = store.bgp_nodes().await.unwrap()["h1"].clone();
    assert_eq!(h1.asn, Some(64513));
    assert_eq!(h1.route_reflector, Some(Ipv4Addr::new(1, 0, 0, 1)));
    assert!(set_node_as(&store, "h1", "inherit").await.unwrap());
    assert!(set_route_reflector(&store, "h1", None, true).await.unwrap());
    // All inherited again: no record left.
    assert!(store.bgp_nodes().await.unwrap().is_empty());
    assert!(!set_route_reflector(&store, "h1", None, true).await.unwrap());
}

#[tokio::test]
async fn bad_node_settings_are_refused_before_anything_is_written() {
    let store = store().await;
    let msg = refused(&store, set_node_as(&store, "h9", "64513")).await;
    assert!(msg.starts_with("no node h9"), "{msg}");
    let msg = refused(&store, set_node_as(&store, "h1", "23456")).await;
    assert!(msg.contains("23456 is reserved"), "{msg}");
    let msg = refused(&store, set_node_as(&store, "h1", "1.10")).await;
    assert!(msg.contains("\"1.10\""), "{msg}");
    let reflector = |id, off| set_route_reflector(&store, "h1", id, off);
    let msg = refused(&store, reflector(Some("1.0.0.1"), true)).await;
    assert!(msg.contains("a cluster ID on a node that is not a reflector"));
    let msg = refused(&store, reflector(None, false)).await;
    assert!(msg.contains("--cluster-id A.B.C.D") && msg.contains("--off"));
    let msg = refused(&store, reflector(Some("0.0.0.0"), false)).await;
    assert!(msg.contains("0.0.0.0 is not a cluster ID"), "{msg}");
    let msg = refused(&store, reflector(Some("1.2.3"), false)).await;
    assert!(msg.contains("\"1.2.3\""), "{msg}");
    let msg = refused(
        &store,
        set_route_reflector(&store, "h9", Some("1.0.0.1"), false),
    )
    .await;
    assert!(msg.starts_with("no node h9"), "{msg}");
}
