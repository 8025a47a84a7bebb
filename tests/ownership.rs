//! The agent touches only what it made: links named like tabby's but not
//! made by it survive resync, `ipam check --repair` and agent restarts,
//! while a stale veth that carries tabby's mark goes.

mod support;

use std::time::Duration;

use support::{Lab, eventually};

const FOREIGN_ROUTE: &str = "198.18.99.1 dev tabbyx proto static scope link";

fn links(lab: &Lab) -> String {
    lab.sh("h1", "ip -d -o link show")
}

fn has_link(lab: &Lab, name: &str) -> bool {
    lab.try_sh("h1", &format!("ip link show dev {name}"))
}

/// A veth pair that looks exactly like tabby's for an endpoint no record
/// names: the agent must take it for its own stale pair.
fn stale_tabby_veth(lab: &Lab, id: &str) -> String {
    let (host, peer) = (format!("tabby{}", &id[..10]), format!("tbtmp{}", &id[..10]));
    lab.sh(
        "h1",
        &format!(
            "ip link add {host} type veth peer name {peer} && \
             ip link set {host} alias tabby:{id} && ip link set {peer} alias tabby:{id}"
        ),
    );
    host
}

fn converged_passes(lab: &Lab) -> usize {
    lab.agent_log("h1").matches("converged").count()
}

fn assert_foreign_untouched(lab: &Lab, when: &str) {
    let all = links(lab);
    assert!(
        has_link(lab, "tabbyuser0"),
        "bridge gone after {when}: {all}"
    );
    assert!(
        has_link(lab, "tabbyx") && has_link(lab, "tabbyy"),
        "veths gone after {when}: {all}"
    );
    assert!(
        lab.sh("h1", "ip route show proto static")
            .contains("198.18.99.1 dev tabbyx"),
        "foreign route gone after {when}"
    );
}

/// A scratch namespace behind a foreign `tabby…` veth, deleted on drop.
struct Scratch<'a> {
    lab: &'a Lab,
    ns: String,
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = self.lab.try_sh("h1", &format!("ip netns del {}", self.ns));
    }
}

const SCRATCH_IP: &str = "198.18.98.1";

/// A user's veth whose name tabby's dispatch takes for one of its own
/// buckets (`tabby` + the first hex digit of c1's endpoint ID), with an
/// address behind it in a namespace of this test's.
fn foreign_veth_with_a_peer<'a>(lab: &'a Lab, bucket: char) -> Scratch<'a> {
    let ns = format!("tbscratch{}", std::process::id());
    let fx = format!("tabby{bucket}user");
    // The host answers ARP for its own address only: the pool goes via it.
    let host_ip = lab.sh(
        "h1",
        "ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1",
    );
    let host_ip = host_ip.trim();
    let scratch = Scratch {
        lab,
        ns: ns.clone(),
    };
    lab.sh(
        "h1",
        &format!(
            "ip netns add {ns} && ip link add {fx} type veth peer name fy netns {ns} && \
             ip link set {fx} up && ip route add {SCRATCH_IP}/32 dev {fx} && \
             ip netns exec {ns} sh -c 'ip addr add {SCRATCH_IP}/32 dev fy && ip link set fy up && \
             ip route add {host_ip}/32 dev fy && ip route add 198.18.64.0/20 via {host_ip} dev fy'"
        ),
    );
    scratch
}

/// Traffic of a foreign `tabby…` interface gets no verdict from tabby:
/// the host reaches it, while a tabby endpoint behind the host is still
/// policed (blocked until its profile allows the address, then reached).
fn foreign_traffic_is_left_alone(lab: &Lab, c1_ip: &str, endpoint_id: &str) {
    let bucket = endpoint_id.chars().next().unwrap();
    let scratch = foreign_veth_with_a_peer(lab, bucket);
    let ns = &scratch.ns;
    assert!(
        lab.try_sh("h1", &format!("busybox ping -c1 -W2 {SCRATCH_IP}")),
        "the host reaches its user's veth peer"
    );
    let from_scratch = |ip: &str| {
        lab.try_sh(
            "h1",
            &format!("ip netns exec {ns} busybox ping -c1 -W1 {ip}"),
        )
    };
    assert!(
        !from_scratch(c1_ip),
        "c1's profile does not allow {SCRATCH_IP}"
    );
    lab.sh(
        "h1",
        &format!("tabby profile db rule add inbound allow from cidr {SCRATCH_IP}/32"),
    );
    eventually(
        Duration::from_secs(20),
        "c1 allows the scratch address",
        || from_scratch(c1_ip).then_some(()),
    );
}

fn restart_agent_and_wait(lab: &Lab, stale: &str) {
    let before = converged_passes(lab);
    lab.stop("h1", "agent");
    lab.start("h1", "agent");
    eventually(
        Duration::from_secs(20),
        "the restarted agent's resync",
        || (!has_link(lab, stale) && converged_passes(lab) > before).then_some(()),
    );
}

#[test]
fn foreign_links_survive_and_stale_tabby_veths_go() {
    let lab = Lab::up(1);
    lab.sh("h1", "tabby network create db --subnet 198.18.64.0/20");
    lab.sh(
        "h1",
        "docker run -d --name c1 --net db tabby/busybox sleep 1000000",
    );
    let id = lab
        .sh(
            "h1",
            "docker inspect -f '{{.NetworkSettings.Networks.db.EndpointID}}' c1",
        )
        .trim()
        .to_string();
    let veth = format!("tabby{}", &id[..10]);
    let alias = format!("alias tabby:{id}");
    assert!(
        lab.sh("h1", &format!("ip -d link show dev {veth}"))
            .contains(&alias),
        "a new veth carries tabby's mark"
    );

    // Things that only look like tabby's.
    lab.sh(
        "h1",
        &format!(
            "ip link add tabbyuser0 type bridge && ip link add tabbyx type veth peer name tabbyy && \
             ip link set tabbyx up && ip route add {FOREIGN_ROUTE}"
        ),
    );
    // A veth made before ownership marks: adopted, as its endpoint is recorded.
    lab.sh("h1", &format!("ip link set dev {veth} alias ''"));
    assert!(
        !lab.sh("h1", &format!("ip -d link show dev {veth}"))
            .contains("alias")
    );

    let stale = stale_tabby_veth(&lab, "feedbeef00112233445566778899");
    restart_agent_and_wait(&lab, &stale);
    assert_foreign_untouched(&lab, "a resync at agent start");
    let c1_ip = lab.container_ip("h1", "c1");
    foreign_traffic_is_left_alone(&lab, &c1_ip, &id);
    assert!(
        lab.sh("h1", &format!("ip -d link show dev {veth}"))
            .contains(&alias),
        "the recorded pre-mark veth was adopted"
    );

    let stale = stale_tabby_veth(&lab, "feedbeef00aabbccddeeff0011");
    let report = lab.sh("h1", "tabby ipam check --host h1 --grace 0 --repair");
    assert!(
        !has_link(&lab, &stale),
        "repair removes the stale veth: {report}"
    );
    assert_foreign_untouched(&lab, "ipam check --repair");

    let stale = stale_tabby_veth(&lab, "feedbeef00998877665544332211");
    restart_agent_and_wait(&lab, &stale);
    assert_foreign_untouched(&lab, "another agent restart");
    assert!(has_link(&lab, &veth), "c1 keeps its veth");
    assert!(
        lab.routes("h1").iter().any(|r| r.contains(&veth)),
        "and its route"
    );
}
