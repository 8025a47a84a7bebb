//! The etcd key layout. Every key tabby writes is built here, under the
//! configured prefix, so the layout can be read in one place:
//!
//! ```text
//! <prefix>/pools/<a.b.c.d-len>          Pool
//! <prefix>/poolindex                    rewritten with every pool added (overlap check)
//! <prefix>/blocks/<a.b.c.d-len>         Block (allocations inside)
//! <prefix>/networks/<docker network id> Network
//! <prefix>/endpoints/<host>/<id>        Endpoint
//! <prefix>/nodes/<host>                 Node
//! <prefix>/alive/<host>                 leased; present while the agent runs
//! <prefix>/nodestatus/<host>            NodeStatus (not watched: written by the watcher)
//! <prefix>/policystatus/<host>          profiles not applied there, and why
//! <prefix>/profiles/<name>              Profile
//! <prefix>/exposures/<proto-port-target> Exposure
//! <prefix>/netdefs/<name>               NetworkDef
//! <prefix>/netstatus/<name>/<host>      NetworkStatus
//! <prefix>/mysql/<cluster>             MysqlCluster (members, never credentials)
//! <prefix>/mysqldecl/<cluster>         MysqlDeclaration (label bootstrap allowed)
//! <prefix>/galera/<cluster>            GaleraCluster (what each member should run)
//! <prefix>/galerastatus/<cluster>/<container> GaleraMemberStatus (its agent's report)
//! ```

use ipnet::IpNet;

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// CIDRs appear in keys with `-` for `/` so a key never gains a level.
pub fn cidr_segment(cidr: &IpNet) -> String {
    format!("{}-{}", cidr.addr(), cidr.prefix_len())
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        let trimmed = prefix.trim_end_matches('/');
        let prefix = if trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        };
        Keys { prefix }
    }

    /// The root every key lives under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    pub fn pools(&self) -> String {
        format!("{}/pools/", self.prefix)
    }

    pub fn pool(&self, cidr: &IpNet) -> String {
        format!("{}{}", self.pools(), cidr_segment(cidr))
    }

    /// Outside `pools/`, so listing pools never returns it.
    pub fn pool_index(&self) -> String {
        format!("{}/poolindex", self.prefix)
    }

    pub fn blocks(&self) -> String {
        format!("{}/blocks/", self.prefix)
    }

    pub fn block(&self, cidr: &IpNet) -> String {
        format!("{}{}", self.blocks(), cidr_segment(cidr))
    }

    pub fn networks(&self) -> String {
        format!("{}/networks/", self.prefix)
    }

    pub fn network(&self, id: &str) -> String {
        format!("{}{}", self.networks(), id)
    }

    pub fn endpoints(&self) -> String {
        format!("{}/endpoints/", self.prefix)
    }

    pub fn host_endpoints(&self, host: &str) -> String {
        format!("{}{}/", self.endpoints(), host)
    }

    pub fn endpoint(&self, host: &str, id: &str) -> String {
        format!("{}{}", self.host_endpoints(host), id)
    }

    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }

    pub fn node(&self, host: &str) -> String {
        format!("{}{}", self.nodes(), host)
    }

    pub fn alive_nodes(&self) -> String {
        format!("{}/alive/", self.prefix)
    }

    pub fn alive(&self, host: &str) -> String {
        format!("{}{}", self.alive_nodes(), host)
    }
}

impl Keys {
    pub fn node_status(&self, host: &str) -> String {
        format!("{}/nodestatus/{host}", self.prefix)
    }

    pub fn node_statuses(&self) -> String {
        format!("{}/nodestatus/", self.prefix)
    }

    pub fn policy_statuses(&self) -> String {
        format!("{}/policystatus/", self.prefix)
    }

    pub fn policy_status(&self, host: &str) -> String {
        format!("{}{host}", self.policy_statuses())
    }

    pub fn netdefs(&self) -> String {
        format!("{}/netdefs/", self.prefix)
    }

    pub fn netdef(&self, name: &str) -> String {
        format!("{}{name}", self.netdefs())
    }

    pub fn netstatuses(&self, name: &str) -> String {
        format!("{}/netstatus/{name}/", self.prefix)
    }

    pub fn netstatus(&self, name: &str, host: &str) -> String {
        format!("{}{host}", self.netstatuses(name))
    }

    pub fn profiles(&self) -> String {
        format!("{}/profiles/", self.prefix)
    }

    pub fn profile(&self, name: &str) -> String {
        format!("{}{name}", self.profiles())
    }

    pub fn exposures(&self) -> String {
        format!("{}/exposures/", self.prefix)
    }

    pub fn exposure(&self, id: &str) -> String {
        format!("{}{id}", self.exposures())
    }

    pub fn mysql_clusters(&self) -> String {
        format!("{}/mysql/", self.prefix)
    }

    pub fn mysql_cluster(&self, name: &str) -> String {
        format!("{}{name}", self.mysql_clusters())
    }

    pub fn galera_clusters(&self) -> String {
        format!("{}/galera/", self.prefix)
    }

    pub fn galera_cluster(&self, name: &str) -> String {
        format!("{}{name}", self.galera_clusters())
    }

    pub fn galera_statuses(&self, cluster: &str) -> String {
        format!("{}/galerastatus/{cluster}/", self.prefix)
    }

    pub fn galera_status(&self, cluster: &str, container: &str) -> String {
        format!("{}{container}", self.galera_statuses(cluster))
    }

    pub fn mysql_declarations(&self) -> String {
        format!("{}/mysqldecl/", self.prefix)
    }

    pub fn mysql_declaration(&self, name: &str) -> String {
        format!("{}{name}", self.mysql_declarations())
    }

    /// Everything BGP: settings, peers and the agents' session counts.
    pub fn bgp(&self) -> String {
        format!("{}/bgp/", self.prefix)
    }

    pub fn bgp_config(&self) -> String {
        format!("{}config", self.bgp())
    }

    pub fn bgp_nodes(&self) -> String {
        format!("{}nodes/", self.bgp())
    }

    pub fn bgp_node(&self, host: &str) -> String {
        format!("{}{host}", self.bgp_nodes())
    }

    pub fn bgp_peers(&self) -> String {
        format!("{}peers/", self.bgp())
    }

    pub fn bgp_node_peers(&self, host: &str) -> String {
        format!("{}node/{host}/", self.bgp_peers())
    }

    /// One key per peer and scope: the same router may be a global peer
    /// and, with another AS, a node's peer.
    pub fn bgp_peer(&self, ip: std::net::Ipv4Addr, node: Option<&str>) -> String {
        match node {
            Some(host) => format!("{}{ip}", self.bgp_node_peers(host)),
            None => format!("{}global/{ip}", self.bgp_peers()),
        }
    }

    pub fn bgp_statuses(&self) -> String {
        format!("{}status/", self.bgp())
    }

    pub fn bgp_status(&self, host: &str) -> String {
        format!("{}{host}", self.bgp_statuses())
    }

    /// Keys whose changes can change a host's BIRD configuration (its
    /// session counts do not).
    pub fn affects_bgp(&self, key: &str) -> bool {
        key.starts_with(&self.bgp()) && !key.starts_with(&self.bgp_statuses())
    }

    /// Every prefix records are listed under (for tests and fuzzing that
    /// write whatever may sit in etcd).
    pub fn record_prefixes(&self) -> Vec<String> {
        vec![
            self.pools(),
            self.blocks(),
            self.networks(),
            self.endpoints(),
            self.nodes(),
            self.alive_nodes(),
            self.node_statuses(),
            self.policy_statuses(),
            self.profiles(),
            self.exposures(),
            self.netdefs(),
            format!("{}/netstatus/", self.prefix),
            self.mysql_clusters(),
            self.mysql_declarations(),
            self.bgp(),
        ]
    }

    /// Keys whose changes can change a host's routes, links or firewall.
    pub fn affects_routes(&self, key: &str) -> bool {
        [
            self.exposures(),
            self.profiles(),
            self.blocks(),
            self.pools(),
            self.nodes(),
            self.alive_nodes(),
            self.endpoints(),
        ]
        .iter()
        .any(|p| key.starts_with(p.as_str()))
            || self.affects_bgp(key)
    }

    /// Keys whose changes can start a label-driven MySQL bootstrap.
    pub fn affects_mysql(&self, key: &str) -> bool {
        key.starts_with(&self.endpoints())
            || key.starts_with(&self.mysql_clusters())
            || key.starts_with(&self.mysql_declarations())
    }

    pub fn affects_galera(&self, key: &str) -> bool {
        key.starts_with(&self.galera_clusters()) || key.starts_with(&self.endpoints())
    }

    pub fn affects_networks(&self, key: &str) -> bool {
        key.starts_with(&self.netdefs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_normalised_and_cidrs_stay_one_level() {
        let keys = Keys::new("tabby/");
        let cidr: IpNet = "198.18.64.0/26".parse().unwrap();
        assert_eq!(keys.block(&cidr), "/tabby/blocks/198.18.64.0-26");
        assert_eq!(keys.endpoint("h1", "abc"), "/tabby/endpoints/h1/abc");
        assert_eq!(Keys::new("/x").root(), "/x/");
    }
}
