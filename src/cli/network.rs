use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Subcommand;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::json;

use super::output::print;
use super::{EtcdArgs, Format};
use crate::ipam::DEFAULT_BLOCK_PREFIX;
use crate::netdef;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Define a network on every host (each agent creates the Docker network).
    Create {
        name: String,
        /// The IPv4 subnet, and for a dual-stack network an IPv6 one
        /// (`--subnet V4 --subnet V6`).
        #[arg(long, required = true, num_args = 1)]
        subnet: Vec<IpNet>,
        /// Profile of the network's containers.
        #[arg(long)]
        profile: Option<String>,
        /// Block size of the pool, if the subnet's pool is created now.
        #[arg(long, default_value_t = DEFAULT_BLOCK_PREFIX)]
        block_size: u8,
        /// Seconds to wait for the hosts that are up to report (0: do not wait).
        #[arg(long, default_value_t = 15)]
        wait: u64,
    },
    /// Remove a network from every host (refused while it has containers).
    Remove {
        name: String,
        #[arg(long, default_value_t = 15)]
        wait: u64,
    },
    /// Networks and, per host, whether its Docker network exists.
    Show,
}

/// One IPv4 subnet, and at most one IPv6 one.
fn subnets(given: &[IpNet]) -> Result<(Ipv4Net, Option<Ipv6Net>)> {
    let v4: Vec<Ipv4Net> = given
        .iter()
        .filter_map(|n| match n {
            IpNet::V4(v4) => Some(*v4),
            IpNet::V6(_) => None,
        })
        .collect();
    let v6: Vec<Ipv6Net> = given
        .iter()
        .filter_map(|n| match n {
            IpNet::V6(v6) => Some(*v6),
            IpNet::V4(_) => None,
        })
        .collect();
    match (v4.as_slice(), v6.as_slice()) {
        ([v4], []) => Ok((*v4, None)),
        ([v4], [v6]) => Ok((*v4, Some(*v6))),
        _ => anyhow::bail!(
            "give one IPv4 --subnet, and for a dual-stack network one IPv6 --subnet beside it"
        ),
    }
}

pub async fn run(cmd: NetworkCommand, etcd: &EtcdArgs, format: Format) -> Result<()> {
    let store = etcd.connect().await?;
    match cmd {
        NetworkCommand::Create {
            name,
            subnet,
            profile,
            block_size,
            wait,
        } => {
            let subnets = subnets(&subnet)?;
            netdef::create(&store, &name, subnets, profile.as_deref(), block_size).await?;
            let shown: Vec<String> = subnet.iter().map(ToString::to_string).collect();
            println!("Network {name} ({}) defined", shown.join(", "));
            let pending = wait_for_hosts(&store, &name, wait, |s| {
                s.is_some_and(|s| s.docker_id.is_some())
            })
            .await?;
            report_pending(&pending, "created it");
        }
        NetworkCommand::Remove { name, wait } => {
            netdef::remove(&store, &name).await?;
            println!("Network {name} removed");
            let pending = wait_for_hosts(&store, &name, wait, |s| s.is_none()).await?;
            report_pending(&pending, "removed it");
        }
        NetworkCommand::Show => show(&store, format).await?,
    }
    Ok(())
}

fn report_pending(pending: &[String], what: &str) {
    if !pending.is_empty() {
        println!(
            "Not yet {what}: {} (see `tabby network show`)",
            pending.join(", ")
        );
    }
}

/// Waits until every live host's status for `name` satisfies `done`;
/// returns the hosts that did not in time.
async fn wait_for_hosts(
    store: &Store,
    name: &str,
    seconds: u64,
    done: impl Fn(Option<&crate::model::NetworkStatus>) -> bool,
) -> Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let alive: HashSet<String> = store.alive_hosts().await?.into_iter().collect();
        let statuses = store.netstatuses(name).await?;
        let mut pending: Vec<String> = alive
            .into_iter()
            .filter(|h| !done(statuses.iter().find(|s| &s.host == h)))
            .collect();
        pending.sort();
        if pending.is_empty() || Instant::now() >= deadline {
            return Ok(pending);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn show(store: &Store, format: Format) -> Result<()> {
    let mut nodes: Vec<String> = store
        .nodes()
        .await?
        .into_iter()
        .map(|n| n.hostname)
        .collect();
    nodes.sort();
    let defs = netdef::show(store).await?;
    let mut headers = vec!["NAME".to_string(), "SUBNET".into(), "PROFILE".into()];
    headers.extend(nodes.iter().map(|n| n.to_uppercase()));
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for (def, statuses) in &defs {
        let mut row = vec![
            def.name.clone(),
            match def.subnet6 {
                Some(v6) => format!("{} {v6}", def.subnet),
                None => def.subnet.to_string(),
            },
            def.profile.clone().unwrap_or_else(|| "-".into()),
        ];
        for node in &nodes {
            row.push(match statuses.iter().find(|s| &s.host == node) {
                Some(s) if s.docker_id.is_some() => "yes".into(),
                Some(s) => format!("error: {}", s.error.as_deref().unwrap_or("?")),
                None => "no".into(),
            });
        }
        rows.push(row);
        out.push(json!({ "name": def.name, "subnet": def.subnet, "subnet6": def.subnet6, "profile": def.profile, "hosts": statuses }));
    }
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    print(format, &headers, rows, &out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::subnets;

    #[test]
    fn one_ipv4_subnet_and_at_most_one_ipv6_one() {
        let nets = |list: &[&str]| list.iter().map(|n| n.parse().unwrap()).collect::<Vec<_>>();
        let (v4, v6) = subnets(&nets(&["2001:2:0:1000::/64", "198.18.64.0/20"])).unwrap();
        assert_eq!(
            (v4.to_string(), v6.unwrap().to_string()),
            ("198.18.64.0/20".into(), "2001:2:0:1000::/64".into())
        );
        assert!(subnets(&nets(&["198.18.64.0/20"])).unwrap().1.is_none());
        for bad in [
            &["2001:2:0:1000::/64"][..],
            &["198.18.64.0/20", "198.18.80.0/20"],
            &["198.18.64.0/20", "2001:2:0:1000::/64", "2001:2:0:2000::/64"],
        ] {
            let err = subnets(&nets(bad)).unwrap_err().to_string();
            assert!(err.contains("one IPv4 --subnet"), "{bad:?}: {err}");
        }
    }
}
