//! The nftables backend's netlink path against nft itself, in scratch
//! network namespaces (one per thread): a change applied over netlink
//! leaves a table that `nft -j list` reads back exactly as the same state
//! programmed whole through nft's JSON, and the periodic check finds
//! nothing to repair.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use chrono::Utc;
use serde_json::Value;
use tabby::model::{Endpoint, EndpointState, Exposure, Profile, Protocol};
use tabby::policy::nftables::NftablesFirewall;
use tabby::policy::rules::{default_profile, parse_rule};
use tabby::policy::{Firewall, PolicyInput, PolicyState, render};

fn endpoint(i: u32, host: &str, profile: &str) -> Endpoint {
    // Chain and veth names take the first digits: they must differ there.
    let id = format!("{:04x}{:060x}", 0xa000 + i, 0);
    Endpoint {
        veth: tabby::dataplane::host_veth_name(&id),
        id,
        network_id: "n".into(),
        host: host.into(),
        ip: std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(198, 18, 64, 0)) + i),
        // Every other one dual-stack: tag sets of both families.
        ip6: (i % 3 != 2).then(|| {
            std::net::Ipv6Addr::from(
                u128::from(std::net::Ipv6Addr::new(0x2001, 2, 0, 0x1000, 0, 0, 0, 0))
                    + u128::from(i),
            )
        }),
        mac: None,
        container: None,
        state: EndpointState::Joined,
        created: Utc::now(),
        profiles: vec![profile.into()],
        labels: Default::default(),
        sandbox: None,
        gateway: None,
    }
}

fn profiles(extra_rules: bool) -> Vec<Profile> {
    let mut db = default_profile("db");
    db.inbound
        .push(parse_rule(&["allow", "tcp", "from", "tag", "web", "to", "ports", "3306"]).unwrap());
    if extra_rules {
        // Every match the netlink encoder writes: a port range, a CIDR,
        // ICMP, a deny, a source port.
        for words in [
            &["allow", "udp", "to", "ports", "1000:2000"][..],
            &["deny", "from", "cidr", "198.19.0.0/16"],
            &["allow", "icmp", "from", "cidr", "198.18.0.0/15"],
            &["allow", "tcp", "from", "ports", "53"],
        ] {
            db.inbound.push(parse_rule(words).unwrap());
        }
        db.outbound
            .push(parse_rule(&["deny", "to", "tag", "web"]).unwrap());
    }
    vec![default_profile("web"), db]
}

/// Exposures of the first local endpoints, one of each kind of key: on
/// every host address, on loopback only, on an interface, on an address
/// and an interface (udp), on every IPv6 address, on an IPv6 address and
/// an interface. The first moves to another endpoint when `moved`.
fn exposures(moved: bool) -> Vec<Exposure> {
    let exposure = |port, target: u32, host_ip: Option<&str>, interface: Option<&str>| Exposure {
        protocol: Protocol::Tcp,
        port,
        host_port: port + 8000,
        target: endpoint(target, "h1", "web").ip.to_string(),
        interface: interface.map(str::to_string),
        docker_endpoint: None,
        host_ip: host_ip.map(|ip| ip.parse().unwrap()),
    };
    let mut both = exposure(83, 2, Some("198.18.0.1"), Some("eth9"));
    both.protocol = Protocol::Udp;
    vec![
        exposure(80, if moved { 2 } else { 0 }, None, None),
        exposure(81, 1, Some("127.0.0.1"), None),
        exposure(82, 1, None, Some("eth9")),
        both,
        exposure(84, 0, Some("::"), None),
        exposure(85, 1, Some("2001:2::1"), Some("eth9")),
    ]
}

fn state(local: u32, remote: u32, quarantine: bool, extra_rules: bool) -> PolicyState {
    let mine: Vec<Endpoint> = (0..local)
        .map(|i| endpoint(i, "h1", if i % 2 == 0 { "web" } else { "db" }))
        .collect();
    let mut all = mine.clone();
    all.extend((100..100 + remote).map(|i| endpoint(i, "h2", "web")));
    let quarantined: Vec<String> = quarantine
        .then(|| mine[0].veth.clone())
        .into_iter()
        .collect();
    render(&PolicyInput {
        local: &mine,
        all: &all,
        profiles: &profiles(extra_rules),
        // Fewer as endpoints come, all six at the end: some go and come back.
        exposures: &exposures(extra_rules)[..(10 - local as usize).min(6)],
        quarantined: &quarantined,
        vxlan_peers: None,
    })
}

/// The table as nft lists it, without handles, with rules grouped by
/// chain in their order and set and map elements sorted.
fn listing() -> BTreeMap<String, Value> {
    let out = Command::new("nft")
        .args(["-j", "list", "table", "inet", "tabby"])
        .output()
        .expect("nft runs");
    assert!(out.status.success(), "{}", support::stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("nft JSON");
    let mut view = BTreeMap::new();
    for mut object in json["nftables"].as_array().unwrap().clone() {
        let Some((kind, body)) = object.as_object_mut().and_then(|o| o.iter_mut().next()) else {
            continue;
        };
        if kind == "metainfo" {
            continue;
        }
        let body = body.as_object_mut().unwrap();
        body.remove("handle");
        if let Some(Value::Array(elems)) = body.get_mut("elem") {
            elems.sort_by_key(|e| e.to_string());
        }
        let name = body.get("name").or(body.get("chain")).unwrap().to_string();
        let key = format!("{kind} {name}");
        match view.entry(key).or_insert(Value::Array(Vec::new())) {
            Value::Array(items) => items.push(Value::Object(body.clone())),
            _ => unreachable!(),
        }
    }
    view
}

/// Runs `body` on a thread in a network namespace of its own: its
/// firewall, and the nft it spawns, see only that namespace.
fn in_scratch_namespace<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        body()
    })
    .join()
    .expect("scratch thread")
}

/// A runtime on the calling thread's namespace (the firewall's blocking
/// sections run where they are called).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap()
}

fn apply(fw: &dyn tabby::policy::Firewall, state: &PolicyState) {
    runtime()
        .block_on(fw.apply(std::sync::Arc::new(state.clone())))
        .expect("firewall applies");
}

/// Applies `steps` in order through one firewall (the first whole, the
/// rest as changes) and returns the listing and how many changes went
/// over netlink.
fn changed(steps: Vec<PolicyState>) -> (BTreeMap<String, Value>, u64, Vec<String>) {
    in_scratch_namespace(move || {
        let fw = NftablesFirewall::default();
        for step in &steps {
            apply(&fw, step);
        }
        let used = fw.netlink_transactions();
        let repaired = runtime().block_on(fw.repair_drift()).expect("check runs");
        (listing(), used, repaired)
    })
}

/// The same state written whole by nft itself.
fn whole(state: PolicyState) -> BTreeMap<String, Value> {
    in_scratch_namespace(move || {
        apply(&NftablesFirewall::nft_only(), &state);
        listing()
    })
}

#[test]
fn changes_over_netlink_read_back_as_nft_writes_them() {
    support::skip_unless_root("network namespaces and nftables");
    // Add endpoints, a remote tag member, new profile rules, a quarantine;
    // then take some away again.
    let steps = vec![
        state(3, 1, false, false),
        state(5, 1, false, false),
        state(5, 3, false, true),
        state(5, 3, true, true),
        state(4, 2, true, true),
    ];
    let last = steps.last().unwrap().clone();
    let (via_netlink, used, repaired) = changed(steps);
    assert_eq!(used, 5, "the first load and every change went over netlink");
    assert!(repaired.is_empty(), "the check found drift: {repaired:?}");
    let via_nft = whole(last);
    // Each kind of exposed port is an element of its maps, not a rule.
    // Loopback is only reached from the host itself (OUTPUT).
    let expected = [
        ("tabby-pre-any", 1),
        ("tabby-pre-if-port", 1),
        ("tabby-pre-ifaddr", 1),
        ("tabby-out-addr-port", 2),
        ("tabby-out-any", 2),
        ("tabby-pre-any6", 1),
        ("tabby-pre-if6-port", 1),
        ("tabby-pre-ifaddr6", 1),
        ("tabby-out-addr6-port", 1),
        ("tabby-out-any6", 2),
    ];
    for (map, count) in expected {
        let elements = &via_netlink[&format!("map \"{map}\"")][0]["elem"];
        assert_eq!(
            elements.as_array().map(Vec::len),
            Some(count),
            "{map}: {elements}"
        );
    }
    assert_eq!(
        via_netlink.keys().collect::<Vec<_>>(),
        via_nft.keys().collect::<Vec<_>>()
    );
    for (key, value) in &via_nft {
        assert_eq!(&via_netlink[key], value, "{key} differs");
    }
}

#[test]
fn a_refused_netlink_change_leaves_the_table_whole() {
    support::skip_unless_root("network namespaces and nftables");
    let (listed, used, repaired) = in_scratch_namespace(|| {
        let fw = NftablesFirewall::default();
        let before = state(3, 1, false, false);
        apply(&fw, &before);
        // Someone deletes the chain of the endpoint that is about to go,
        // behind tabby's back: the change's delete of it is refused, and
        // the table is replaced whole.
        let after = state(2, 1, false, false);
        let (veth, chain) = before
            .ruleset
            .dispatch
            .from
            .iter()
            .find(|(veth, _)| !after.ruleset.dispatch.from.contains_key(*veth))
            .unwrap();
        let nft = |cmd: String| {
            let status = Command::new("sh")
                .args(["-c", &format!("nft {cmd}")])
                .status();
            assert!(status.unwrap().success(), "nft {cmd}");
        };
        nft(format!(
            "delete element inet tabby tabby-from-wl '{{ \"{veth}\" }}'"
        ));
        nft(format!("flush chain inet tabby {chain}"));
        nft(format!("delete chain inet tabby {chain}"));
        let counted = fw.netlink_transactions();
        apply(&fw, &after);
        let used = fw.netlink_transactions() - counted;
        let repaired = runtime().block_on(fw.repair_drift()).unwrap();
        (listing(), used, repaired)
    });
    assert_eq!(
        used, 1,
        "only the reload of the whole table counts as applied"
    );
    assert!(repaired.is_empty(), "{repaired:?}");
    assert_eq!(listed, whole(state(2, 1, false, false)));
}

#[test]
fn a_port_list_goes_through_nft_and_reads_back_the_same() {
    support::skip_unless_root("network namespaces and nftables");
    let with_list = || {
        let mut state = state(2, 0, false, false);
        let rule = parse_rule(&["allow", "tcp", "to", "ports", "80,443"]).unwrap();
        let chain = tabby::policy::names::profile_chain("I", "web");
        let rules = tabby::policy::render::profile_rule(&rule);
        let (_, chain_rules) = state
            .ruleset
            .filter
            .chains
            .iter_mut()
            .find(|(name, _)| *name == chain)
            .unwrap();
        chain_rules.splice(0..0, rules);
        state
    };
    let (listed, used, repaired) = changed(vec![state(2, 0, false, false), with_list()]);
    assert_eq!(used, 1, "the first load only: nft wrote the port list");
    assert!(repaired.is_empty(), "{repaired:?}");
    assert_eq!(listed, whole(with_list()));
}

#[test]
fn the_table_as_nft_lists_it_loads_back_into_nft() {
    support::skip_unless_root("network namespaces and nftables");
    // Every kind of name tabby makes: hashed ones for a long profile and
    // its tag, and the VXLAN peers' set.
    let long = "a-profile-name-too-long-for-a-chain";
    let peers = ["198.18.0.11".parse().unwrap()];
    let mine = vec![endpoint(0, "h1", long)];
    let state = render(&PolicyInput {
        local: &mine,
        all: &mine,
        profiles: &[default_profile(long)],
        exposures: &[],
        quarantined: &[],
        vxlan_peers: Some(&peers),
    });
    let (text, check) = in_scratch_namespace(move || {
        apply(&NftablesFirewall::default(), &state);
        let listed = Command::new("nft")
            .args(["list", "table", "inet", "tabby"])
            .output()
            .expect("nft runs");
        let text = support::stdout(&listed);
        // Loaded into a fresh table of another name: the listing's own
        // table is still there.
        let renamed = text.replacen("table inet tabby", "table inet tabby_check", 1);
        let mut child = Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nft runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(renamed.as_bytes())
            .unwrap();
        (text, child.wait_with_output().unwrap())
    });
    assert!(text.contains("tabby-t-_"), "a hashed set name: {text}");
    assert!(text.contains("TABBY-PI-_"), "a hashed chain name: {text}");
    assert!(text.contains("tabby-t-_vxlan"), "{text}");
    assert!(
        check.status.success(),
        "nft cannot load its own listing: {}",
        support::stderr(&check)
    );
}
