//! IPv6 IPAM over the plugin socket, in dockerd's call order for an
//! `--ipv6` network: pools and /128s answered from etcd like IPv4 ones;
//! the network itself is refused until IPv6 is routed and policed, and
//! that refusal writes nothing.

use serde_json::json;

use super::support::Lab;
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

    // The --ipv6 network is refused, and the refusal writes nothing.
    let before = lab.etcd_snapshot("h1");
    let err = assert_refused(
        &call(
            &lab,
            "/NetworkDriver.CreateNetwork",
            json!({
                "NetworkID": "6a".repeat(32),
                "IPv4Data": [{"Pool": "198.18.64.0/20", "Gateway": "169.254.1.1/32"}],
                "IPv6Data": [{"Pool": POOL6, "Gateway": "fe80::ecee:eeff:feee:eeee/128"}]
            }),
        ),
        "an IPv6 network",
    );
    assert!(err.contains("IPv6 routes and policy are not"), "{err}");
    assert_eq!(lab.etcd_snapshot("h1"), before);

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
