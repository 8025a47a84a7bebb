//! Label-driven clusters: containers started with
//! `--label tabby.mysql.cluster=NAME --label tabby.mysql.role=master|replica`
//! on a tabby network. The agent on the master's host bootstraps each
//! cluster once its members are known (`agent::mysql`).

use std::collections::BTreeMap;

use crate::model::Endpoint;

pub const CLUSTER_LABEL: &str = "tabby.mysql.cluster";
pub const ROLE_LABEL: &str = "tabby.mysql.role";
pub const GALERA_ROLE: &str = "galera";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledCluster {
    pub name: String,
    pub master: Endpoint,
    /// Ordered by address, so the same members always compare equal.
    pub replicas: Vec<Endpoint>,
}

impl LabelledCluster {
    /// Container names (or addresses), master first.
    pub fn member_names(&self) -> Vec<String> {
        std::iter::once(&self.master)
            .chain(&self.replicas)
            .map(member_name)
            .collect()
    }
}

pub fn member_name(endpoint: &Endpoint) -> String {
    endpoint
        .container
        .clone()
        .unwrap_or_else(|| endpoint.ip.to_string())
}

/// Groups labelled endpoints into clusters that have a master and at least
/// one replica. What cannot form a cluster is reported, not guessed at.
pub fn clusters(endpoints: &[Endpoint]) -> (Vec<LabelledCluster>, Vec<String>) {
    let mut groups: BTreeMap<&str, (Vec<&Endpoint>, Vec<&Endpoint>)> = BTreeMap::new();
    let mut problems = Vec::new();
    for endpoint in endpoints {
        let Some(cluster) = endpoint.labels.get(CLUSTER_LABEL) else {
            continue;
        };
        let group = groups.entry(cluster.as_str()).or_default();
        match endpoint.labels.get(ROLE_LABEL).map(String::as_str) {
            Some("master") => group.0.push(endpoint),
            Some("replica") => group.1.push(endpoint),
            // Galera members are grouped by `galera_clusters`.
            Some(GALERA_ROLE) => {}
            other => problems.push(format!(
                "{} in MySQL cluster {cluster}: label {ROLE_LABEL} is {other:?}, not master or replica",
                member_name(endpoint)
            )),
        }
    }
    let mut clusters = Vec::new();
    for (name, (masters, mut replicas)) in groups {
        match masters[..] {
            [master] if !replicas.is_empty() => {
                replicas.sort_by_key(|e| e.ip);
                clusters.push(LabelledCluster {
                    name: name.to_string(),
                    master: master.clone(),
                    replicas: replicas.into_iter().cloned().collect(),
                });
            }
            [_, _, ..] => problems.push(format!(
                "MySQL cluster {name} has {} masters ({}): label one of them as master",
                masters.len(),
                masters
                    .iter()
                    .map(|e| member_name(e))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            // No master or no replica yet: more containers may come.
            _ => {}
        }
    }
    (clusters, problems)
}

/// Galera members by cluster, oldest endpoint first (the first is the
/// one a new cluster starts from), then by name.
pub fn galera_clusters(endpoints: &[Endpoint]) -> BTreeMap<String, Vec<Endpoint>> {
    let mut groups: BTreeMap<String, Vec<Endpoint>> = BTreeMap::new();
    for endpoint in endpoints {
        if endpoint.labels.get(ROLE_LABEL).map(String::as_str) != Some(GALERA_ROLE) {
            continue;
        }
        if let (Some(cluster), Some(_)) = (endpoint.labels.get(CLUSTER_LABEL), &endpoint.container)
        {
            groups
                .entry(cluster.clone())
                .or_default()
                .push(endpoint.clone());
        }
    }
    for members in groups.values_mut() {
        members.sort_by(|a, b| (a.created, &a.container).cmp(&(b.created, &b.container)));
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(name: &str, ip: &str, labels: &[(&str, &str)]) -> Endpoint {
        Endpoint {
            container: Some(name.into()),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Endpoint::for_test(&format!("{name}-id"), "h1", ip)
        }
    }

    #[test]
    fn a_master_and_replicas_form_a_cluster_in_a_stable_order() {
        let m = [(CLUSTER_LABEL, "c"), (ROLE_LABEL, "master")];
        let r = [(CLUSTER_LABEL, "c"), (ROLE_LABEL, "replica")];
        let (clusters, problems) = clusters(&[
            ep("r2", "10.0.0.3", &r),
            ep("plain", "10.0.0.9", &[]),
            ep("m", "10.0.0.1", &m),
            ep("r1", "10.0.0.2", &r),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(clusters.len(), 1);
        assert_eq!(clusters[0].member_names(), ["m", "r1", "r2"]);
    }

    #[test]
    fn galera_members_group_apart_oldest_first() {
        let g = [(CLUSTER_LABEL, "g"), (ROLE_LABEL, GALERA_ROLE)];
        let mut late = ep("late", "10.0.0.2", &g);
        late.created += chrono::Duration::seconds(5);
        let first = ep("first", "10.0.0.1", &g);
        let (clusters, problems) = clusters(&[late.clone(), first.clone()]);
        assert!(clusters.is_empty() && problems.is_empty(), "{problems:?}");
        let groups = galera_clusters(&[late, first]);
        let names: Vec<_> = groups["g"].iter().map(member_name).collect();
        assert_eq!(names, ["first", "late"]);
    }

    #[test]
    fn incomplete_clusters_wait_and_conflicting_ones_are_reported() {
        let (clusters, problems) = clusters(&[
            ep(
                "lonely",
                "10.0.0.1",
                &[(CLUSTER_LABEL, "a"), (ROLE_LABEL, "master")],
            ),
            ep(
                "m1",
                "10.0.0.2",
                &[(CLUSTER_LABEL, "b"), (ROLE_LABEL, "master")],
            ),
            ep(
                "m2",
                "10.0.0.3",
                &[(CLUSTER_LABEL, "b"), (ROLE_LABEL, "master")],
            ),
            ep(
                "r",
                "10.0.0.4",
                &[(CLUSTER_LABEL, "b"), (ROLE_LABEL, "replica")],
            ),
            ep(
                "odd",
                "10.0.0.5",
                &[(CLUSTER_LABEL, "b"), (ROLE_LABEL, "primary")],
            ),
        ]);
        assert!(clusters.is_empty());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("2 masters (m1, m2)")));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("odd") && p.contains("\"primary\""))
        );
    }
}
