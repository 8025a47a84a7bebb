//! The plugin protocol against a real agent with real etcd: the shapes
//! dockerd expects, and refusals that change nothing.

#[path = "protocol/ipv6.rs"]
mod ipv6;
#[path = "protocol/refusals.rs"]
mod refusals;
mod support;

use serde_json::{Value, json};

use support::{Lab, http};

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
