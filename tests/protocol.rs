//! The plugin protocol against a real agent with real etcd: the shapes
//! dockerd expects, and refusals that change nothing.

mod support;

use serde_json::{Value, json};
use std::time::Duration;

use support::{Lab, eventually, http};

const POOL: &str = "198.18.64.0/20";

fn call(lab: &Lab, path: &str, body: Value) -> http::Response {
    http::post(&lab.socket("h1"), path, body.to_string().as_bytes())
}

fn ok(lab: &Lab, path: &str, body: Value) -> Value {
    http::post_ok(&lab.socket("h1"), path, &body)
}

fn assert_refused(resp: &http::Response, what: &str) -> String {
    assert_eq!(
        resp.status,
        500,
        "{what}: {}",
        String::from_utf8_lossy(&resp.body)
    );
    let body = resp.json();
    let err = body["Err"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no Err in {body}"));
    assert!(!err.is_empty(), "{what}: empty error");
    assert_eq!(
        body["Error"], body["Err"],
        "{what}: IpamDriver reads Error, NetworkDriver Err"
    );
    err.to_string()
}

#[test]
fn argument_less_calls_take_empty_bodies() {
    let lab = Lab::up(1);
    let sock = lab.socket("h1");
    let activate = http::post(&sock, "/Plugin.Activate", b"");
    assert_eq!(activate.status, 200);
    assert_eq!(
        activate.json(),
        json!({"Implements": ["NetworkDriver", "IpamDriver"]})
    );
    let caps = http::post(&sock, "/NetworkDriver.GetCapabilities", b"").json();
    assert_eq!(caps["Scope"], "local");
    assert_eq!(caps["ConnectivityScope"], "global");
    let ipam_caps = http::post(&sock, "/IpamDriver.GetCapabilities", b"").json();
    assert_eq!(ipam_caps["RequiresMACAddress"], false);
    let spaces = http::post(&sock, "/IpamDriver.GetDefaultAddressSpaces", b"").json();
    assert!(spaces["LocalDefaultAddressSpace"].is_string());
    assert!(spaces["GlobalDefaultAddressSpace"].is_string());
    assert_eq!(
        http::post(&sock, "/NetworkDriver.NoSuchCall", b"{}").status,
        404
    );
    assert_eq!(http::post(&sock, "/nothing", b"").status, 404);
}

#[test]
fn a_full_attach_cycle_in_docker_call_order() {
    let lab = Lab::up(1);
    let pool = ok(
        &lab,
        "/IpamDriver.RequestPool",
        json!({"AddressSpace": "tabby-local", "Pool": POOL, "SubPool": "", "Options": {}, "V6": false}),
    );
    assert_eq!(pool["Pool"], POOL);
    assert_eq!(pool["Data"]["com.docker.network.gateway"], "169.254.1.1/32");
    let pool_id = pool["PoolID"].as_str().unwrap().to_string();

    // Without --subnet: the default pool, reported as 0.0.0.0/0.
    let default = ok(
        &lab,
        "/IpamDriver.RequestPool",
        json!({"AddressSpace": "tabby-local", "Pool": "", "V6": false}),
    );
    assert_eq!(default["Pool"], "0.0.0.0/0");
    assert_eq!(default["PoolID"], pool_id.as_str());

    let net = "0a".repeat(32);
    let ep = "e1".repeat(32);
    ok(
        &lab,
        "/NetworkDriver.CreateNetwork",
        json!({
            "NetworkID": net, "Options": {"com.docker.network.generic": {"tabby.profile": "db"}},
            "IPv4Data": [{"AddressSpace": "tabby-local", "Pool": POOL, "Gateway": "169.254.1.1/32"}], "IPv6Data": []
        }),
    );
    let addr = ok(
        &lab,
        "/IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": "", "Options": null}),
    );
    let address = addr["Address"].as_str().unwrap().to_string();
    assert!(
        address.ends_with("/32") && address.starts_with("198.18."),
        "{address}"
    );

    let created = ok(
        &lab,
        "/NetworkDriver.CreateEndpoint",
        json!({
            "NetworkID": net, "EndpointID": ep, "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""}, "Options": {}
        }),
    );
    assert_eq!(created, json!({}), "must not echo fields Docker sent");
    let join = ok(
        &lab,
        "/NetworkDriver.Join",
        json!({"NetworkID": net, "EndpointID": ep, "SandboxKey": "/var/run/docker/netns/x", "Options": {}}),
    );
    let peer = join["InterfaceName"]["SrcName"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(join["InterfaceName"]["DstPrefix"], "eth");
    assert_eq!(join["Gateway"], "169.254.1.1");
    assert_eq!(
        join["StaticRoutes"],
        json!([
            {"Destination": "169.254.1.1/32", "RouteType": 1},
            {"Destination": POOL, "RouteType": 0, "NextHop": "169.254.1.1"}
        ])
    );
    let veth = format!("tabby{}", &ep[..10]);
    assert!(
        lab.try_sh("h1", &format!("ip link show {peer}")),
        "peer veth exists"
    );
    let ip = address.trim_end_matches("/32");
    let routes = lab.sh("h1", "ip route show proto 77");
    assert!(
        routes.contains(&format!("{ip} dev {veth} scope link")),
        "{routes}"
    );
    assert_eq!(
        lab.sh(
            "h1",
            &format!("cat /proc/sys/net/ipv4/conf/{veth}/proxy_arp")
        )
        .trim(),
        "1"
    );
    assert_eq!(
        lab.sh(
            "h1",
            &format!("cat /proc/sys/net/ipv4/neigh/{veth}/proxy_delay")
        )
        .trim(),
        "0"
    );

    ok(
        &lab,
        "/NetworkDriver.ProgramExternalConnectivity",
        json!({"NetworkID": net, "EndpointID": ep, "Options": {}}),
    );
    ok(
        &lab,
        "/NetworkDriver.EndpointOperInfo",
        json!({"NetworkID": net, "EndpointID": ep}),
    );
    let busy = call(
        &lab,
        "/NetworkDriver.DeleteNetwork",
        json!({"NetworkID": net}),
    );
    assert!(assert_refused(&busy, "DeleteNetwork with endpoint").contains("endpoint"));

    ok(
        &lab,
        "/NetworkDriver.RevokeExternalConnectivity",
        json!({"NetworkID": net, "EndpointID": ep}),
    );
    ok(
        &lab,
        "/NetworkDriver.Leave",
        json!({"NetworkID": net, "EndpointID": ep}),
    );
    assert!(
        !lab.try_sh("h1", &format!("ip link show {veth}")),
        "Leave removes the veth"
    );
    assert!(
        !lab.routes("h1")
            .iter()
            .any(|r| r.starts_with(&format!("{ip} dev"))),
        "and its route"
    );
    ok(
        &lab,
        "/NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": net, "EndpointID": ep}),
    );
    ok(
        &lab,
        "/IpamDriver.ReleaseAddress",
        json!({"PoolID": pool_id, "Address": ip}),
    );
    ok(
        &lab,
        "/IpamDriver.ReleaseAddress",
        json!({"PoolID": pool_id, "Address": ip}),
    );
    ok(&lab, "/IpamDriver.ReleasePool", json!({"PoolID": pool_id}));
    ok(
        &lab,
        "/NetworkDriver.DeleteNetwork",
        json!({"NetworkID": net}),
    );
    let holder = lab.sh("h1", &format!("tabby ipam show --ip {ip} -o json"));
    assert!(holder.contains("\"allocated\": false"), "{holder}");
}

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
            "IPv6 pool",
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
