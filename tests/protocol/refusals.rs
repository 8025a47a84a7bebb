//! Bad plugin requests: each is refused with a clear error and changes
//! nothing in etcd or the kernel.

use serde_json::json;
use std::time::Duration;

use super::support::{Lab, eventually, http};
use super::{POOL, assert_refused, call, ok};

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let lab = Lab::up(1);
    let pool_id = ok(&lab, "/IpamDriver.RequestPool", json!({"Pool": POOL}))["PoolID"]
        .as_str()
        .unwrap()
        .to_string();
    let net = "a".repeat(64);
    ok(
        &lab,
        "/NetworkDriver.CreateNetwork",
        json!({
            "NetworkID": net, "IPv4Data": [{"Pool": POOL, "Gateway": "169.254.1.1/32"}]
        }),
    );
    // An endpoint whose veth name (tabby + the ID's first 10 characters) a
    // second endpoint, below, would share; the ipam check's grace period
    // (60 s) keeps it while the test runs.
    let addresses: Vec<String> = (0..2)
        .map(|_| {
            let grant = ok(
                &lab,
                "/IpamDriver.RequestAddress",
                json!({"PoolID": pool_id, "Address": ""}),
            );
            grant["Address"].as_str().unwrap().to_string()
        })
        .collect();
    let shared_start = "e".repeat(20);
    ok(
        &lab,
        "/NetworkDriver.CreateEndpoint",
        json!({
            "NetworkID": net, "EndpointID": format!("{shared_start}{}", "0".repeat(44)),
            "Interface": {"Address": addresses[0]}
        }),
    );
    // The agent reacts to the setup's writes (a resync records its node
    // status): wait until nothing moves before taking the reference.
    let before = eventually(Duration::from_secs(10), "etcd to settle", || {
        let first = lab.etcd_snapshot("h1");
        std::thread::sleep(Duration::from_millis(500));
        (lab.etcd_snapshot("h1") == first).then_some(first)
    });

    let sock = lab.socket("h1");
    let raw_cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "malformed JSON",
            "/NetworkDriver.CreateNetwork",
            b"{\"NetworkID\": ".to_vec(),
        ),
        (
            "empty body for a call with arguments",
            "/IpamDriver.RequestAddress",
            b"".to_vec(),
        ),
        (
            "wrong type",
            "/NetworkDriver.CreateNetwork",
            br#"{"NetworkID": 42, "IPv4Data": []}"#.to_vec(),
        ),
        (
            "missing field",
            "/NetworkDriver.Join",
            br#"{"NetworkID": "x"}"#.to_vec(),
        ),
        (
            "missing PoolID",
            "/IpamDriver.RequestAddress",
            br#"{"Address": ""}"#.to_vec(),
        ),
        ("10 MB body", "/IpamDriver.RequestPool", {
            let mut big = br#"{"Pool": ""#.to_vec();
            big.extend(std::iter::repeat_n(b'1', 10 << 20));
            big.extend(br#""}"#);
            big
        }),
    ];
    for (what, path, body) in raw_cases {
        assert_refused(&http::post(&sock, path, &body), what);
    }
    let json_cases = vec![
        (
            "bad CIDR",
            "/IpamDriver.RequestPool",
            json!({"Pool": "198.18.300.0/20"}),
        ),
        (
            "host bits in CIDR",
            "/IpamDriver.RequestPool",
            json!({"Pool": "198.18.64.1/20"}),
        ),
        (
            "overlapping pool",
            "/IpamDriver.RequestPool",
            json!({"Pool": "198.18.66.0/24"}),
        ),
        (
            "IPv6 default pool when there is none",
            "/IpamDriver.RequestPool",
            json!({"Pool": "", "V6": true}),
        ),
        (
            "sub-pool",
            "/IpamDriver.RequestPool",
            json!({"Pool": POOL, "SubPool": "198.18.64.0/24"}),
        ),
        (
            "bad pool ID",
            "/IpamDriver.RequestAddress",
            json!({"PoolID": "nope", "Address": ""}),
        ),
        (
            "unknown pool ID",
            "/IpamDriver.RequestAddress",
            json!({"PoolID": "198.19.0.0/24", "Address": ""}),
        ),
        (
            "address outside pool",
            "/IpamDriver.RequestAddress",
            json!({"PoolID": pool_id, "Address": "198.19.0.1"}),
        ),
        (
            "bad address",
            "/IpamDriver.ReleaseAddress",
            json!({"PoolID": pool_id, "Address": "x.y"}),
        ),
        (
            "foreign IPAM",
            "/NetworkDriver.CreateNetwork",
            json!({"NetworkID": "b".repeat(64), "IPv4Data": [{"Pool": "172.30.0.0/16", "Gateway": "172.30.0.1/16"}]}),
        ),
        (
            "unknown network",
            "/NetworkDriver.CreateEndpoint",
            json!({"NetworkID": "c".repeat(64), "EndpointID": "d".repeat(64), "Interface": {"Address": "198.18.64.9/32"}}),
        ),
        (
            "unallocated address",
            "/NetworkDriver.CreateEndpoint",
            json!({"NetworkID": net, "EndpointID": "d".repeat(64), "Interface": {"Address": "198.18.64.9/32"}}),
        ),
        (
            "unknown endpoint join",
            "/NetworkDriver.Join",
            json!({"NetworkID": net, "EndpointID": "f".repeat(64), "SandboxKey": ""}),
        ),
        (
            "unknown endpoint leave",
            "/NetworkDriver.Leave",
            json!({"NetworkID": net, "EndpointID": "f".repeat(64)}),
        ),
        (
            "unknown endpoint delete",
            "/NetworkDriver.DeleteEndpoint",
            json!({"NetworkID": net, "EndpointID": "f".repeat(64)}),
        ),
        (
            "unknown network delete",
            "/NetworkDriver.DeleteNetwork",
            json!({"NetworkID": "c".repeat(64)}),
        ),
        (
            "empty network ID",
            "/NetworkDriver.DeleteNetwork",
            json!({"NetworkID": ""}),
        ),
        (
            "non-hex network ID",
            "/NetworkDriver.CreateNetwork",
            json!({"NetworkID": "n".repeat(64), "IPv4Data": [{"Pool": POOL, "Gateway": "169.254.1.1/32"}]}),
        ),
        (
            "short endpoint ID",
            "/NetworkDriver.CreateEndpoint",
            json!({"NetworkID": net, "EndpointID": "abc", "Interface": {"Address": "198.18.64.9/32"}}),
        ),
        (
            "non-ASCII endpoint ID",
            "/NetworkDriver.Join",
            json!({"NetworkID": net, "EndpointID": format!("é{}", "a".repeat(62)), "SandboxKey": ""}),
        ),
        (
            "endpoint ID with a newline",
            "/NetworkDriver.Leave",
            json!({"NetworkID": net, "EndpointID": format!("{}\n", "a".repeat(63))}),
        ),
        (
            "endpoint whose veth name is taken",
            "/NetworkDriver.CreateEndpoint",
            json!({
                "NetworkID": net, "EndpointID": format!("{shared_start}{}", "1".repeat(44)),
                "Interface": {"Address": addresses[1]}
            }),
        ),
        (
            "loopback pool",
            "/IpamDriver.RequestPool",
            json!({"Pool": "127.0.0.0/8"}),
        ),
    ];
    for (what, path, body) in json_cases {
        let err = assert_refused(&call(&lab, path, body), what);
        if (what.contains("network ID") || what.contains("endpoint ID"))
            && !what.starts_with("empty")
        {
            assert!(err.contains("64 lowercase hex digits"), "{what}: {err}");
        }
        if what == "endpoint whose veth name is taken" {
            assert!(err.contains("already has"), "{err}");
        }
        if what == "overlapping pool" {
            assert!(
                err.contains("overlaps existing pool 198.18.64.0/20"),
                "{err}"
            );
        }
    }
    assert_eq!(
        lab.etcd_snapshot("h1"),
        before,
        "refused requests must not write to etcd"
    );
}
