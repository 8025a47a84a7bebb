use chrono::Utc;

use super::*;
use crate::model::{EndpointState, Protocol};
use crate::policy::iptables::text::{lay_out, rule_text};
use crate::policy::names::{is_own_chain, tag_set};
use crate::policy::rules::{default_profile, parse_rule};

/// A profile rule in iptables' words.
fn lines(rule: &model::Rule) -> Vec<String> {
    profile_rule(rule).iter().map(rule_text).collect()
}

pub(super) fn ep(id: &str, ip: &str, profile: &str) -> Endpoint {
    Endpoint {
        id: id.repeat(64 / id.len()),
        network_id: "n".into(),
        host: "h1".into(),
        ip: ip.parse().unwrap(),
        ip6: None,
        veth: crate::dataplane::host_veth_name(&id.repeat(64 / id.len())),
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

fn render_with(endpoints: &[Endpoint], profiles: &[Profile]) -> PolicyState {
    render_exposed(endpoints, profiles, &[])
}

/// Every endpoint local, with these exposures.
pub(super) fn render_exposed(
    endpoints: &[Endpoint],
    profiles: &[Profile],
    exposures: &[Exposure],
) -> PolicyState {
    render(&PolicyInput {
        local: endpoints,
        all: endpoints,
        profiles,
        exposures,
        quarantined: &[],
        vxlan_peers: None,
    })
}

#[test]
fn an_allow_marks_and_returns_and_a_deny_drops() {
    let rule = parse_rule(&["allow", "tcp", "from", "tag", "B", "to", "ports", "3306"]).unwrap();
    assert_eq!(
        lines(&rule),
        [
            "-p tcp -m set --match-set tabby-t-B src -m multiport --dports 3306 -j MARK --set-xmark 0x100000/0x100000",
            "-p tcp -m set --match-set tabby-6-B src -m multiport --dports 3306 -j MARK --set-xmark 0x100000/0x100000",
            "-m mark --mark 0x100000/0x100000 -j RETURN"
        ],
        "a tag: once per family, one return"
    );
    let deny = parse_rule(&["deny", "from", "cidr", "198.18.0.0/24"]).unwrap();
    assert_eq!(lines(&deny), ["-s 198.18.0.0/24 -j DROP"]);
    let deny6 = parse_rule(&["deny", "from", "cidr", "2001:2:0:1000::/56"]).unwrap();
    assert_eq!(
        lines(&deny6),
        ["-s 2001:2:0:1000::/56 -j DROP"],
        "a CIDR: its family only"
    );
    let any = parse_rule(&["allow", "tcp", "to", "ports", "22"]).unwrap();
    assert_eq!(
        lines(&any).len(),
        2,
        "no address: one rule for both families"
    );
}

#[test]
fn endpoints_get_anti_spoofing_and_their_profiles_chains() {
    let eps = [ep("a", "198.18.64.1", "A"), ep("b", "198.18.64.2", "B")];
    let state = render_with(&eps, &[default_profile("A"), default_profile("B")]);
    let text = lay_out(&state.ruleset);
    let chain = |name: &str| {
        text.filter
            .chains
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.clone())
            .unwrap()
    };
    let fw = chain("TABBY-FW-aaaaaaaaaaaa");
    assert!(
        fw.contains(&"! -s 198.18.64.1/32 -j DROP".to_string()),
        "{fw:?}"
    );
    assert!(fw.contains(&"-j TABBY-PO-A".to_string()));
    assert_eq!(fw.last().unwrap(), "-j DROP");
    let tw = chain("TABBY-TW-bbbbbbbbbbbb");
    assert!(tw.contains(&"-j TABBY-PI-B".to_string()));
    assert_eq!(
        chain("TABBY-PI-A")[0],
        "-m set --match-set tabby-t-A src -j MARK --set-xmark 0x100000/0x100000"
    );
    assert_eq!(
        state.sets["tabby-t-A"],
        BTreeSet::from(["198.18.64.1".parse().unwrap()])
    );
}

#[test]
fn a_tag_change_touches_sets_only_and_rules_per_endpoint_stay_constant() {
    let eps = [ep("a", "198.18.64.1", "A"), ep("b", "198.18.64.2", "B")];
    let (a, mut b) = (default_profile("A"), default_profile("B"));
    let before = render_with(&eps, &[a.clone(), b.clone()]);
    b.tags.insert("A".into());
    let after = render_with(&eps, &[a.clone(), b]);
    assert_eq!(before.ruleset, after.ruleset, "no rule changes");
    assert_eq!(after.sets["tabby-t-A"].len(), 2);

    let count = |n: usize| {
        let eps: Vec<Endpoint> = (0..n)
            .map(|i| {
                let mut e = ep("c", "198.18.64.1", "A");
                e.id = format!("{i:064}");
                e.veth = crate::dataplane::host_veth_name(&e.id);
                e
            })
            .collect();
        lay_out(&render_with(&eps, std::slice::from_ref(&a)).ruleset)
            .filter
            .rule_count()
    };
    let (ten, hundred) = (count(10), count(100));
    assert_eq!(
        (hundred - ten) % 90,
        0,
        "rules grow linearly with endpoints"
    );
    assert_eq!(
        (hundred - ten) / 90,
        (count(11) - ten),
        "and by the same amount each"
    );
}

#[test]
fn long_names_are_hashed_within_limits() {
    let long = "x".repeat(60);
    assert!(tag_set(&long).len() <= 31);
    assert!(profile_chain("I", &long).len() <= 28);
    assert_ne!(tag_set(&long), tag_set(&"y".repeat(60)));
}

#[test]
fn loopback_exposures_only_dnat_locally_and_chains_are_recognised() {
    let eps = [ep("a", "198.18.64.1", "A")];
    let exposure = |host_port, host_ip: Option<&str>| Exposure {
        protocol: Protocol::Tcp,
        port: 3306,
        host_port,
        target: eps[0].id.clone(),
        interface: None,
        docker_endpoint: None,
        host_ip: host_ip.map(|ip| ip.parse().unwrap()),
    };
    let exposures = [
        exposure(13306, Some("127.0.0.1")),
        exposure(13307, None),
        exposure(13308, Some("198.18.0.11")),
    ];
    let state = render_exposed(&eps, &[default_profile("A")], &exposures);
    let text = lay_out(&state.ruleset);
    let nat = |name: &str| {
        let (_, rules) = text.nat.chains.iter().find(|(n, _)| n == name).unwrap();
        rules.join("\n")
    };
    let (pre, out) = (nat(PREROUTING), nat(OUTPUT));
    assert!(
        !pre.contains("13306"),
        "loopback is never reachable from outside: {pre}"
    );
    assert!(out.contains(
        "-d 127.0.0.1/32 -m addrtype --dst-type LOCAL -p tcp -m multiport --dports 13306"
    ));
    assert!(pre.contains("-d 198.18.0.11/32 ") && out.contains("-d 198.18.0.11/32 "));
    assert!(pre.contains("--dports 13307") && !pre.contains("-d 0.0.0.0"));
    assert!(nat(POSTROUTING).contains("-s 127.0.0.0/8 -o tabby+"));
    for table in [&text.filter, &text.nat] {
        for (name, _) in &table.chains {
            assert!(is_own_chain(name), "{name} would never be cleaned up");
        }
    }
    assert!(!is_own_chain("TABBY-MINE") && !is_own_chain("DOCKER"));
}

/// A `tabby…` interface that is no endpoint (a user's `tabby0` bridge)
/// gets no verdict from tabby; a quarantined veth gets only drops.
#[test]
fn foreign_interfaces_get_no_verdict_and_quarantined_veths_drop() {
    let eps = [ep("a", "198.18.64.1", "A")];
    let quarantined = [crate::dataplane::host_veth_name(&"c".repeat(64))];
    let state = render(&PolicyInput {
        local: &eps,
        all: &eps,
        profiles: &[default_profile("A")],
        exposures: &[],
        quarantined: &quarantined,
        vxlan_peers: None,
    });
    let text = lay_out(&state.ruleset);
    let chain = |name: &str| {
        let chains = &text.filter.chains;
        chains.iter().find(|(n, _)| n == name).unwrap().1.clone()
    };
    for (root, flag) in [("TABBY-FROM-WL", "-i"), ("TABBY-TO-WL", "-o")] {
        let top = chain(root);
        assert_eq!(top[0], format!("{flag} tabbycccccccccc -j DROP"), "{top:?}");
        assert!(!top.iter().any(|r| r == "-j DROP"), "{top:?}");
        let bucket = chain(&format!("{root}-a"));
        assert_eq!(bucket.len(), 1, "no catch-all drop: {bucket:?}");
    }
    let forward = chain("TABBY-FORWARD");
    let accepts: Vec<_> = forward
        .iter()
        .filter(|r| r.ends_with("-j ACCEPT"))
        .collect();
    assert_eq!(accepts.len(), 3, "{forward:?}");
    assert!(
        accepts[1..]
            .iter()
            .all(|r| r.contains("-m mark --mark 0x100000/0x100000")),
        "only what an endpoint's chains allowed: {forward:?}"
    );
}

#[test]
fn with_a_tunnel_vxlan_is_taken_only_from_nodes() {
    let peers: Vec<Ipv4Addr> = vec![
        "198.18.0.11".parse().unwrap(),
        "198.18.1.12".parse().unwrap(),
    ];
    let eps = [ep("a", "198.18.64.1", "A")];
    let profiles = [default_profile("A")];
    let input = |vxlan_peers| PolicyInput {
        local: &eps,
        all: &eps,
        profiles: &profiles,
        exposures: &[],
        quarantined: &[],
        vxlan_peers,
    };
    let state = render(&input(Some(&peers)));
    let chain: Vec<String> = state.ruleset.filter.rules(INPUT).unwrap()[..2]
        .iter()
        .map(rule_text)
        .collect();
    assert_eq!(
        chain,
        [
            "-p udp -m multiport --dports 4789 -m set --match-set tabby-t-_vxlan src -j RETURN",
            "-p udp -m multiport --dports 4789 -j DROP",
        ]
    );
    assert_eq!(
        state.sets["tabby-t-_vxlan"],
        peers.iter().map(|p| std::net::IpAddr::V4(*p)).collect()
    );
    let without = render(&input(None));
    assert!(!without.sets.contains_key("tabby-t-_vxlan"));
    let text: Vec<String> = without
        .ruleset
        .filter
        .rules(INPUT)
        .unwrap()
        .iter()
        .map(rule_text)
        .collect();
    assert!(!text.iter().any(|r| r.contains("4789")), "{text:?}");
}

#[test]
fn ipv6_is_anti_spoofed_and_tagged_like_ipv4() {
    let mut a = ep("a", "198.18.64.1", "A");
    a.ip6 = Some("2001:2:0:1000::1".parse().unwrap());
    let b = ep("b", "198.18.64.2", "A");
    let state = render_with(&[a.clone(), b.clone()], &[default_profile("A")]);
    let chain = |ep: &Endpoint| {
        let name = endpoint_chain("F", &ep.id);
        let rules = &state
            .ruleset
            .filter
            .chains
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1;
        rules.iter().map(rule_text).collect::<Vec<_>>()
    };
    assert!(
        chain(&a).contains(&"! -s 2001:2:0:1000::1/128 -j DROP".to_string()),
        "{:?}",
        chain(&a)
    );
    assert!(
        chain(&b).contains(&"-6 -j DROP".to_string()),
        "no IPv6 address: no IPv6 at all"
    );
    // Each tag has a set per family, holding the addresses of that family.
    let v6: Vec<String> = state.sets["tabby-6-A"]
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    assert_eq!(v6, ["2001:2:0:1000::1"]);
    assert_eq!(state.sets["tabby-t-A"].len(), 2);
    // Neighbour discovery reaches the host before anything is dispatched.
    let input = &state
        .ruleset
        .filter
        .chains
        .iter()
        .find(|(n, _)| n == "TABBY-INPUT")
        .unwrap()
        .1;
    let texts: Vec<String> = input.iter().map(rule_text).collect();
    let nd = texts
        .iter()
        .position(|t| t.contains("--icmpv6-type 135"))
        .unwrap();
    let dispatch = texts.iter().position(|t| t.ends_with("-j TABBY-FROM-WL"));
    assert!(nd < dispatch.expect("a dispatch rule"), "{texts:?}");
}
