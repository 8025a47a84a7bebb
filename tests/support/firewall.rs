//! Reading a lab host's firewall, whichever backend its agent runs: the
//! tests that look at rules run on both (`TABBY_FIREWALL`).

use super::Lab;

/// The backend the lab's agents run: `TABBY_FIREWALL` if set, else what
/// `auto` picks (nftables where `nft` works).
pub fn backend() -> &'static str {
    match std::env::var("TABBY_FIREWALL").as_deref() {
        Ok("iptables") => "iptables",
        Ok("nftables") => "nftables",
        _ if std::process::Command::new("nft")
            .args(["-j", "list", "tables"])
            .output()
            .is_ok_and(|o| o.status.success()) =>
        {
            "nftables"
        }
        _ => "iptables",
    }
}

pub fn nftables() -> bool {
    backend() == "nftables"
}

/// A listing line without its counters' numbers (they move with traffic).
fn without_counts(line: &str) -> String {
    let mut words = Vec::new();
    let mut skip = false;
    for word in line.split_whitespace() {
        if std::mem::take(&mut skip) {
            continue;
        }
        skip = word == "packets" || word == "bytes";
        if !skip {
            words.push(word);
        }
    }
    words.join(" ")
}

/// The rule spec that enters tabby's firewall first in iptables'
/// `FORWARD` (its hook, or the nftables backend's accept of marked packets).
pub fn forward_hook() -> &'static str {
    if nftables() {
        "-m mark --mark 0x100000/0x100000 -j ACCEPT"
    } else {
        "-j TABBY-FORWARD"
    }
}

impl Lab {
    /// tabby's rules on a host, without set members or counters' noise:
    /// equal before and after a change that touches sets only.
    pub fn fw_rules(&self, host: &str) -> String {
        if nftables() {
            // -t: sets and maps without their elements. Counters change
            // with traffic: their numbers are left out.
            let table = self.sh(host, "nft -t list table inet tabby");
            table
                .lines()
                .map(without_counts)
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            self.sh(host, "iptables -S | grep TABBY")
        }
    }

    /// The members of a tag set, as the backend lists them.
    pub fn fw_set(&self, host: &str, set: &str) -> String {
        if nftables() {
            self.sh(host, &format!("nft list set inet tabby {set}"))
        } else {
            self.sh(host, &format!("ipset list {set}"))
        }
    }

    /// One of tabby's chains (filter, or nat for the DNAT chains).
    pub fn fw_chain(&self, host: &str, table: &str, chain: &str) -> String {
        if nftables() {
            let listed = self.sh(host, &format!("nft list chain inet tabby {chain}"));
            listed
                .lines()
                .map(without_counts)
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            self.sh(host, &format!("iptables -t {table} -S {chain}"))
        }
    }

    /// The exposed ports a host's firewall DNATs: elements of its DNAT
    /// maps with nftables, DNAT rules with iptables.
    pub fn fw_dnat_entries(&self, host: &str) -> usize {
        let script = if nftables() {
            "nft -j list table inet tabby | jq '[.nftables[].map | select(. != null) \
             | select(.name | test(\"^tabby-(pre|out)-[a-z]+6?$\")) | (.elem // []) | length] | add'"
        } else {
            "{ iptables -t nat -S; ip6tables -t nat -S; } | grep -c '^-A TABBY-.* -j DNAT' || true"
        };
        self.sh(host, script).trim().parse().expect("a count")
    }

    /// One of tabby's filter chains, as the IPv6 side holds it (the same
    /// chain with nftables).
    pub fn fw_chain6(&self, host: &str, chain: &str) -> String {
        if nftables() {
            self.fw_chain(host, "filter", chain)
        } else {
            self.sh(host, &format!("ip6tables -S {chain}"))
        }
    }

    /// Flushes a filter chain of the IPv6 side by hand, as drift.
    pub fn fw_flush_chain6(&self, host: &str, chain: &str) {
        if nftables() {
            self.fw_flush_chain(host, chain);
        } else {
            self.sh(host, &format!("ip6tables -F {chain}"));
        }
    }

    /// Flushes a chain by hand, as drift.
    pub fn fw_flush_chain(&self, host: &str, chain: &str) {
        if nftables() {
            self.sh(host, &format!("nft flush chain inet tabby {chain}"));
        } else {
            self.sh(host, &format!("iptables -F {chain}"));
        }
    }

    /// Empties a tag set by hand, as drift.
    pub fn fw_flush_set(&self, host: &str, set: &str) {
        if nftables() {
            self.sh(host, &format!("nft flush set inet tabby {set}"));
        } else {
            self.sh(host, &format!("ipset flush {set}"));
        }
    }

    /// Packets the IPv6 anti-spoofing rules of a host have dropped.
    pub fn spoof6_drops(&self, host: &str) -> u64 {
        let script = if nftables() {
            "nft list table inet tabby | awk '/ip6 saddr != .* counter packets/ {for (i=1;i<NF;i++) if ($i==\"packets\") s+=$(i+1)} END {print s+0}'"
        } else {
            "ip6tables-save -c -t filter | sed -n 's/^\\[\\([0-9]*\\):[0-9]*\\] -A TABBY-FW-.* ! -s .* -j DROP$/\\1/p' | awk '{s+=$1} END {print s+0}'"
        };
        self.sh(host, script).trim().parse().expect("a count")
    }

    /// Packets the anti-spoofing rules of a host have dropped.
    pub fn spoof_drops(&self, host: &str) -> u64 {
        let script = if nftables() {
            "nft list table inet tabby | awk '/ip saddr != .* counter packets/ {for (i=1;i<NF;i++) if ($i==\"packets\") s+=$(i+1)} END {print s+0}'"
        } else {
            "iptables -L -v -x -n | grep -A3 'Chain TABBY-FW' | awk '/!198.18/ {s+=$1} END {print s+0}'"
        };
        self.sh(host, script).trim().parse().expect("a count")
    }
}
