//! Switching firewall backends (`--firewall`): an agent restarted on the
//! other backend removes everything the first one made, policy holds on
//! the new one, and a user's own chain and table are left alone.

mod support;

use std::time::Duration;

use support::{Lab, eventually};

const WAIT: Duration = Duration::from_secs(30);
/// The nftables backend's one rule in iptables.
const NFT_ACCEPT: &str = "-A FORWARD -m mark --mark 0x100000/0x100000 -j ACCEPT";

fn restart_agent(lab: &Lab, backend: &str) {
    lab.restart_agent("h1", &[("TABBY_FIREWALL", backend)]);
}

/// tabby's look in iptables, ip6tables (lines marked `ip6 `) and ipset.
fn iptables_objects(lab: &Lab) -> String {
    lab.sh(
        "h1",
        "{ iptables -S; iptables -t nat -S; ip6tables -S | sed 's/^/ip6 /'; \
         ip6tables -t nat -S | sed 's/^/ip6 /'; ipset list -n; } \
         | grep -E 'TABBY-|tabby-t-|tabby-6-|0x100000' || true",
    )
}

fn nft_table(lab: &Lab) -> bool {
    lab.try_sh("h1", "nft list table inet tabby >/dev/null")
}

/// a2 reaches a1 (one profile), b1 does not (another).
fn policy_holds(lab: &Lab, a1: &str) {
    eventually(WAIT, "a2 to reach a1", || {
        lab.pings("h1", "a2", a1).then_some(())
    });
    assert!(!lab.pings("h1", "b1", a1), "b1 must stay blocked");
}

#[test]
fn switching_backends_leaves_nothing_of_the_other() {
    let lab = Lab::up_with(1, &[("TABBY_FIREWALL", "iptables")]);
    lab.sh("h1", "tabby pool add 198.18.64.0/20");
    for p in ["A", "B"] {
        lab.sh(
            "h1",
            &format!("docker network create -d tabby --ipam-driver tabby --subnet 198.18.64.0/20 --opt tabby.profile={p} n{p}"),
        );
    }
    for (name, net) in [("a1", "nA"), ("a2", "nA"), ("b1", "nB")] {
        lab.sh(
            "h1",
            &format!("docker run -d --name {name} --net {net} tabby/busybox sleep 1d"),
        );
    }
    let a1 = lab.container_ip("h1", "a1");
    // A user's own look-alikes, which no backend may touch.
    lab.sh("h1", "iptables -N TABBY-MINE && nft add table inet mine");
    policy_holds(&lab, &a1);
    let objects = iptables_objects(&lab);
    for made in ["-N TABBY-FORWARD", "ip6 -N TABBY-FORWARD", "tabby-6-A"] {
        assert!(objects.lines().any(|l| l.starts_with(made)), "{objects}");
    }
    assert!(!nft_table(&lab));

    restart_agent(&lab, "nftables");
    eventually(WAIT, "the iptables backend's objects to go", || {
        let left = iptables_objects(&lab);
        let only_mine = left
            .lines()
            .all(|l| l.contains("TABBY-MINE") || l.ends_with(NFT_ACCEPT));
        (only_mine && nft_table(&lab)).then_some(())
    });
    policy_holds(&lab, &a1);

    restart_agent(&lab, "iptables");
    eventually(WAIT, "the nftables table and its accept to go", || {
        let left = iptables_objects(&lab);
        (!nft_table(&lab) && !left.contains(NFT_ACCEPT)).then_some(())
    });
    policy_holds(&lab, &a1);
    assert!(iptables_objects(&lab).contains("TABBY-MINE"));
    assert!(lab.try_sh("h1", "nft list table inet mine >/dev/null"));
}
