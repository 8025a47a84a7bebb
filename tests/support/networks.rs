//! Lab views of containers with several networks.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Lab, eventually};

impl Lab {
    /// The address a container holds on one of its networks.
    pub fn network_ip(&self, host: &str, container: &str, network: &str) -> String {
        self.sh(
            host,
            &format!(
                "docker inspect -f '{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}' {container}"
            ),
        )
        .trim()
        .to_string()
    }

    /// The interface and gateway a container routes `ip` through
    /// (`ip route get` inside it): e.g. ("eth1", Some("169.254.1.2")).
    pub fn route_get(&self, host: &str, container: &str, ip: &str) -> (String, Option<String>) {
        let line = self.sh(host, &format!("docker exec {container} ip route get {ip}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| {
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|i| words.get(i + 1))
                .map(|w| w.to_string())
        };
        (after("dev").expect("a device"), after("via"))
    }

    /// Waits until IPAM holds exactly the addresses of the live endpoints
    /// on `networks` for `host`, and tabby records exactly those.
    pub fn wait_consistent_on(&self, host: &str, networks: &[&str]) -> BTreeSet<String> {
        eventually(
            Duration::from_secs(30),
            "allocations == live endpoints",
            || {
                let live: BTreeSet<String> = networks
                    .iter()
                    .flat_map(|n| self.live_ips(host, n))
                    .collect();
                (self.allocated_ips(host) == live && self.recorded_ips(host) == live)
                    .then_some(live)
            },
        )
    }
}
