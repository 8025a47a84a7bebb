use super::*;

fn ports(list: &[(u16, u16)]) -> Vec<PortRange> {
    list.iter()
        .map(|&(first, last)| PortRange { first, last })
        .collect()
}

#[test]
fn docker_ids_are_64_lowercase_hex() {
    let good = "0123456789abcdef".repeat(4);
    docker_id("EndpointID", &good).unwrap();
    for bad in [
        String::new(),
        "abc".into(),
        "e".repeat(64).replace('e', "g"),
        "A".repeat(64),
        format!("{}\n", &good[..63]),
        format!("é{}", &good[..62]),
        format!("{good}0"),
    ] {
        let err = docker_id("EndpointID", &bad).unwrap_err().to_string();
        assert!(err.contains("64 lowercase hex"), "{bad:?}: {err}");
    }
}

#[test]
fn names_stay_in_the_alphabet_and_63_characters() {
    name("network name", "db-1.prod_x").unwrap();
    name("network name", &"a".repeat(63)).unwrap();
    for bad in ["", "-a", "a b", "a/b", "a\nb", "é", &"a".repeat(64)] {
        assert!(name("network name", bad).is_err(), "{bad:?}");
    }
    // A network ID names the default profile of a plain `docker network create`.
    profile_name("profile name", &"ab".repeat(32)).unwrap();
    assert!(profile_name("profile name", &"x".repeat(64)).is_err());
    hostname(&format!("{}.example", "h".repeat(60))).unwrap();
    container_name("/web-1").unwrap();
    assert!(container_name("a\nb").is_err());
    interface("eth0").unwrap();
    assert!(interface("a b").is_err() && interface(&"e".repeat(16)).is_err());
}

#[test]
fn prefix_never_splits_a_character() {
    assert_eq!(prefix("abcdef", 3), "abc");
    assert_eq!(prefix("ab", 12), "ab");
    assert_eq!(prefix("aé", 2), "a");
    assert_eq!(prefix("", 5), "");
}

#[test]
fn pools_clear_of_reserved_ranges_and_bounded() {
    pool("198.18.64.0/20".parse().unwrap(), 26).unwrap();
    pool("10.0.0.0/8".parse().unwrap(), 24).unwrap();
    for (cidr, block) in [
        ("0.0.0.0/0", 26),
        ("128.0.0.0/7", 26),
        ("127.0.0.0/8", 24),
        ("127.0.0.1/32", 32),
        ("169.254.1.0/24", 26),
        ("224.0.0.0/8", 24),
        ("250.0.0.0/8", 24),
        ("255.255.255.255/32", 32),
        ("0.1.0.0/16", 26),
        ("10.0.0.0/8", 26),
        ("198.18.64.1/20", 26),
        ("198.18.64.0/20", 15),
        ("198.18.64.0/20", 33),
        ("2001:2::/31", 122),
        ("::/0", 122),
        ("::1/128", 128),
        ("::ffff:198.18.0.0/120", 122),
        ("fe80::/64", 122),
        ("ff02::/64", 122),
        ("2001:2:0:1000::1/56", 122),
        ("2001:2:0:1000::/56", 111),
        ("2001:2:0:1000::/56", 129),
    ] {
        assert!(
            pool(cidr.parse().unwrap(), block).is_err(),
            "{cidr} /{block}"
        );
    }
    // IPv6 pools have no block bound: free blocks are computed.
    pool("2001:2:0:1000::/56".parse().unwrap(), 122).unwrap();
    pool("2001:2::/48".parse().unwrap(), 128).unwrap();
    let cidr: IpNet = "198.18.0.0/24".parse().unwrap();
    let err = pool_clear_of(cidr, "node h1", ["198.18.0.11".parse().unwrap()]).unwrap_err();
    assert!(
        err.to_string()
            .contains("198.18.0.11, the address of node h1")
    );
    pool_clear_of(cidr, "node h1", ["198.18.1.11".parse().unwrap()]).unwrap();
    let cidr: IpNet = "2001:2:0:1000::/56".parse().unwrap();
    let err = pool_clear_of(cidr, "node h1", ["2001:2:0:10ff::1".parse().unwrap()]);
    assert!(err.is_err());
}

fn tcp_to(list: &[(u16, u16)]) -> Rule {
    Rule {
        action: crate::model::Action::Allow,
        protocol: Some(Protocol::Tcp),
        from: RuleMatch::default(),
        to: RuleMatch {
            ports: ports(list),
            ..Default::default()
        },
    }
}

#[test]
fn multiport_slots_count_as_iptables_does() {
    let fifteen: Vec<(u16, u16)> = (1..=15).map(|p| (p, p)).collect();
    rule(&tcp_to(&fifteen)).unwrap();
    let mut sixteen = fifteen.clone();
    sixteen[0] = (1, 2);
    assert_eq!(multiport_slots(&ports(&sixteen)), 16);
    let err = rule(&tcp_to(&sixteen)).unwrap_err().to_string();
    assert!(
        err.contains("16 slots") && err.contains("allows 15"),
        "{err}"
    );
    let eight_ranges: Vec<(u16, u16)> = (1..=8).map(|p| (p * 10, p * 10 + 1)).collect();
    assert!(rule(&tcp_to(&eight_ranges)).is_err());
    assert!(rule(&tcp_to(&[(0, 1)])).is_err());
    assert!(rule(&tcp_to(&[(9, 1)])).is_err());
    let mut bad_cidr = tcp_to(&[(80, 80)]);
    bad_cidr.from.cidr = Some("198.18.0.1/24".parse().unwrap());
    assert!(rule(&bad_cidr).is_err());
    let mut bad_tag = tcp_to(&[]);
    bad_tag.from.tag = Some("a\nb".into());
    assert!(rule(&bad_tag).is_err());
}

#[test]
fn records_read_back_are_checked() {
    use crate::model::Endpoint;
    let id = "ab".repeat(32);
    let mut ep = Endpoint::for_test(&id, "h1", "198.18.64.2");
    ep.network_id = "cd".repeat(32);
    ep.veth = crate::dataplane::host_veth_name(&id);
    ep.validate().unwrap();
    let mut forged = ep.clone();
    forged.veth = "eth0".into();
    assert!(forged.validate().is_err(), "a veth that is not its own");
    let mut newline = ep.clone();
    newline.id = format!("{}\n", &id[..63]);
    assert!(newline.validate().is_err());
    let mut profile = crate::policy::rules::default_profile("db");
    profile.validate().unwrap();
    profile
        .inbound
        .push(tcp_to(&(1..=16).map(|p| (p, p)).collect::<Vec<_>>()));
    assert!(profile.validate().is_err());
}
