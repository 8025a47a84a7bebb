//! IPv6 IPAM over the plugin socket, in dockerd's call order for an
//! `--ipv6` network: pools and /128s answered from etcd like IPv4 ones,
//! and the network refused (writing nothing) unless tabby's IPAM gave its
//! IPv6 addresses.

use serde_json::json;

use std::time::Duration;

use super::support::{Lab, eventually};
use super::{assert_refused, call, ok};

const POOL6: &str = "2001:2:0:1000::/64";

#[test]
fn ipv6_pools_and_addresses_in_docker_call_order() {
    let lab = Lab::up(1);
    let pool = ok(
        &lab,
        "/IpamDriver.RequestPool",
        json!({"AddressSpace": "tabby-local", "Pool": POOL6, "SubPool": "", "V6": true}),
    );
    assert_eq!(pool["PoolID"], POOL6);
    assert_eq!(pool["Pool"], POOL6);
    assert_eq!(
        pool["Data"]["com.docker.network.gateway"],
        "fe80::ecee:eeff:feee:eeee/128"
    );
    // Without --subnet: the first IPv6 pool, reported as ::/0.
    let default = ok(
        &lab,
        "/IpamDriver.RequestPool",
        json!({"AddressSpace": "tabby-local", "Pool": "", "V6": true}),
    );
    assert_eq!(
        (&default["PoolID"], &default["Pool"]),
        (&json!(POOL6), &json!("::/0"))
    );
    let gateway = ok(
        &lab,
        "/IpamDriver.RequestAddress",
        json!({"PoolID": POOL6, "Address": "",
               "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    );
    assert_eq!(gateway["Address"], "fe80::ecee:eeff:feee:eeee/128");

    let auto = ok(
        &lab,
        "/IpamDriver.RequestAddress",
        json!({"PoolID": POOL6, "Address": ""}),
    );
    let auto = auto["Address"].as_str().unwrap().to_string();
    assert!(auto.ends_with("/128"), "{auto}");
    let auto_ip = auto.trim_end_matches("/128");
    let pool6: ipnet::IpNet = POOL6.parse().unwrap();
    assert!(
        pool6.contains(&auto_ip.parse::<std::net::IpAddr>().unwrap()),
        "{auto}"
    );
    // --ip6, then the same address again: refused naming its holder.
    let wanted = "2001:2:0:1000::abc";
    let got = ok(
        &lab,
        "/IpamDriver.RequestAddress",
        json!({"PoolID": POOL6, "Address": wanted}),
    );
    assert_eq!(got["Address"], format!("{wanted}/128"));
    let err = assert_refused(
        &call(
            &lab,
            "/IpamDriver.RequestAddress",
            json!({"PoolID": POOL6, "Address": wanted}),
        ),
        "a taken --ip6",
    );
    assert!(
        err.contains("already in use by") && err.contains("h1"),
        "{err}"
    );

    // The CLI reads both from etcd: the pool with its /122 blocks, and
    // each address's holder.
    let pools = lab.sh("h1", "tabby pool show");
    assert!(pools.contains(POOL6) && pools.contains("/122"), "{pools}");
    let held = lab.sh("h1", &format!("tabby ipam show --ip {auto_ip}"));
    assert!(held.contains("allocated") && held.contains("h1"), "{held}");

    an_ipv6_network_needs_tabbys_ipam(&lab);

    // Docker releases what it asked for; the addresses are free again.
    for address in [auto.as_str(), wanted, "fe80::ecee:eeff:feee:eeee/128"] {
        ok(
            &lab,
            "/IpamDriver.ReleaseAddress",
            json!({"PoolID": POOL6, "Address": address}),
        );
    }
    ok(&lab, "/IpamDriver.ReleasePool", json!({"PoolID": POOL6}));
    let free = lab.sh("h1", &format!("tabby ipam show --ip {auto_ip}"));
    assert!(free.contains("free"), "{free}");
}

/// An --ipv6 network whose IPv6 addresses came from another IPAM is
/// refused, and the refusal writes nothing; one from tabby's is made.
fn an_ipv6_network_needs_tabbys_ipam(lab: &Lab) {
    ok(
        lab,
        "/IpamDriver.RequestPool",
        json!({"Pool": "198.18.64.0/20", "V6": false}),
    );
    // The agent reacts to the pool (a resync records its node status):
    // wait until nothing moves before taking the reference.
    let before = eventually(Duration::from_secs(10), "etcd to settle", || {
        let first = lab.etcd_snapshot("h1");
        std::thread::sleep(Duration::from_millis(500));
        (lab.etcd_snapshot("h1") == first).then_some(first)
    });
    let network = |gateway6: &str| {
        json!({
            "NetworkID": "6a".repeat(32),
            "IPv4Data": [{"Pool": "198.18.64.0/20", "Gateway": "169.254.1.1/32"}],
            "IPv6Data": [{"Pool": POOL6, "Gateway": gateway6}]
        })
    };
    let err = assert_refused(
        &call(
            lab,
            "/NetworkDriver.CreateNetwork",
            network("2001:2:0:1000::1/64"),
        ),
        "an IPv6 network of another IPAM",
    );
    assert!(err.contains("tabby's IPAM for IPv6"), "{err}");
    assert_eq!(lab.etcd_snapshot("h1"), before);
    ok(
        lab,
        "/NetworkDriver.CreateNetwork",
        network("fe80::ecee:eeff:feee:eeee/128"),
    );
    ok(
        lab,
        "/NetworkDriver.DeleteNetwork",
        json!({"NetworkID": "6a".repeat(32)}),
    );
}
