//! Declared clusters: label-driven bootstrap acts only on a cluster an
//! operator declared (`tabby mysql cluster create NAME --member C…`), and
//! only on the containers the declaration confirms. A container label is
//! something anyone who can run a container can set; a declaration in
//! etcd is something only an operator with datastore access can write.
//!
//! A member is `container` (that name on any host) or `container@host`.
//! A declaration with no members confirms no one: members are added with
//! `tabby mysql cluster member add NAME C…`.

use std::collections::BTreeMap;

use chrono::Utc;

use super::labels::{CLUSTER_LABEL, member_name};
use super::{Error, Result};
use crate::model::{Endpoint, MysqlDeclaration};
use crate::store::{Expect, Store};

const MAX_NAME: usize = 63;

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Cluster names become etcd key segments: one level, no surprises.
pub fn validate_cluster_name(name: &str) -> Result<()> {
    if name_ok(name) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid MySQL cluster name {name:?}: use 1 to {MAX_NAME} letters, digits, '.', '_' or '-'"
        )))
    }
}

/// `container` or `container@host`, each part a valid name.
pub fn validate_member(spec: &str) -> Result<()> {
    let (container, host) = split_member(spec);
    if name_ok(container) && host.is_none_or(name_ok) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid member {spec:?}: use CONTAINER or CONTAINER@HOST, each 1 to {MAX_NAME} \
             letters, digits, '.', '_' or '-'"
        )))
    }
}

fn split_member(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once('@') {
        Some((container, host)) => (container, Some(host)),
        None => (spec, None),
    }
}

/// Whether the declaration names this endpoint's container.
pub fn confirms(declaration: &MysqlDeclaration, endpoint: &Endpoint) -> bool {
    let Some(container) = endpoint.container.as_deref() else {
        return false;
    };
    declaration.members.iter().any(|spec| {
        let (name, host) = split_member(spec);
        name == container && host.is_none_or(|h| h == endpoint.host)
    })
}

/// A labelled container the agent leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub container: String,
    pub host: String,
    pub cluster: String,
    pub reason: &'static str,
}

/// Splits labelled endpoints into those a declaration confirms (the only
/// ones label-driven bootstrap may group and touch) and those refused.
/// Unlabelled endpoints are neither.
pub fn admit(
    endpoints: &[Endpoint],
    declarations: &[MysqlDeclaration],
) -> (Vec<Endpoint>, Vec<Refusal>) {
    let by_name: BTreeMap<&str, &MysqlDeclaration> = declarations
        .iter()
        .filter(|d| name_ok(&d.name))
        .map(|d| (d.name.as_str(), d))
        .collect();
    let mut admitted = Vec::new();
    let mut refused = Vec::new();
    for endpoint in endpoints {
        let Some(cluster) = endpoint.labels.get(CLUSTER_LABEL) else {
            continue;
        };
        let reason = if !name_ok(cluster) {
            "the cluster label is not a valid cluster name"
        } else {
            match by_name.get(cluster.as_str()) {
                None => "the cluster is not declared (tabby mysql cluster create)",
                Some(d) if !confirms(d, endpoint) => {
                    "the container is not a member of the cluster's declaration \
                     (tabby mysql cluster member add)"
                }
                Some(_) => {
                    admitted.push(endpoint.clone());
                    continue;
                }
            }
        };
        refused.push(Refusal {
            container: member_name(endpoint),
            host: endpoint.host.clone(),
            cluster: cluster.clone(),
            reason,
        });
    }
    (admitted, refused)
}

fn checked_members(members: &[String]) -> Result<Vec<String>> {
    for member in members {
        validate_member(member)?;
    }
    let mut members = members.to_vec();
    members.sort();
    members.dedup();
    Ok(members)
}

/// Declares a cluster; nothing is written if anything is wrong.
pub async fn create(store: &Store, name: &str, members: &[String]) -> Result<MysqlDeclaration> {
    validate_cluster_name(name)?;
    let declaration = MysqlDeclaration {
        name: name.to_string(),
        members: checked_members(members)?,
        created: Utc::now(),
    };
    if !store
        .swap_mysql_declaration(&declaration, Expect::Absent)
        .await?
    {
        return Err(Error::Invalid(format!(
            "MySQL cluster {name} is already declared (tabby mysql cluster member add changes its members)"
        )));
    }
    Ok(declaration)
}

/// Declared clusters, or the one named.
pub async fn show(store: &Store, name: Option<&str>) -> Result<Vec<MysqlDeclaration>> {
    let Some(name) = name else {
        return Ok(store.mysql_declarations().await?);
    };
    validate_cluster_name(name)?;
    match store.mysql_declaration(name).await? {
        Some(d) => Ok(vec![d.value]),
        None => Err(not_declared(name)),
    }
}

/// Forgets a declaration: agents stop bootstrapping the cluster; what is
/// already replicating is not undone.
pub async fn remove(store: &Store, name: &str) -> Result<()> {
    validate_cluster_name(name)?;
    if store.delete_mysql_declaration(name).await? {
        Ok(())
    } else {
        Err(not_declared(name))
    }
}

/// Adds (or, with `add` false, removes) members, compare-and-swap.
pub async fn change_members(
    store: &Store,
    name: &str,
    members: &[String],
    add: bool,
) -> Result<MysqlDeclaration> {
    validate_cluster_name(name)?;
    let members = checked_members(members)?;
    loop {
        let Some(current) = store.mysql_declaration(name).await? else {
            return Err(not_declared(name));
        };
        let mut declaration = current.value.clone();
        if add {
            declaration.members.extend(members.iter().cloned());
        } else {
            if let Some(missing) = members.iter().find(|m| !declaration.members.contains(m)) {
                return Err(Error::Invalid(format!(
                    "{missing} is not a member of MySQL cluster {name}"
                )));
            }
            declaration.members.retain(|m| !members.contains(m));
        }
        declaration.members.sort();
        declaration.members.dedup();
        if declaration == current.value {
            return Ok(declaration);
        }
        let expect = Expect::Revision(current.revision);
        if store.swap_mysql_declaration(&declaration, expect).await? {
            return Ok(declaration);
        }
    }
}

fn not_declared(name: &str) -> Error {
    Error::Invalid(format!(
        "no declared MySQL cluster {name} (tabby mysql cluster create makes one)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::labels::ROLE_LABEL;

    fn ep(name: &str, host: &str, cluster: &str) -> Endpoint {
        Endpoint {
            container: Some(name.into()),
            labels: [(CLUSTER_LABEL, cluster), (ROLE_LABEL, "replica")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Endpoint::for_test(&format!("{name}-id"), host, "10.0.0.1")
        }
    }

    fn declared(name: &str, members: &[&str]) -> MysqlDeclaration {
        MysqlDeclaration {
            name: name.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
            created: Utc::now(),
        }
    }

    #[test]
    fn names_are_one_key_level_of_safe_characters() {
        for good in ["shop", "a.b_c-d", "0", &"x".repeat(63)] {
            assert!(validate_cluster_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "../x", "a b", "é", "a\nb", &"x".repeat(64)] {
            let err = validate_cluster_name(bad).unwrap_err().to_string();
            assert!(err.contains("invalid MySQL cluster name"), "{err}");
        }
        assert!(validate_member("db1@h2").is_ok());
        for bad in ["", "@h2", "db1@", "db1@h/2", "a@b@c"] {
            assert!(validate_member(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_confirmed_members_of_declared_clusters_are_admitted() {
        let decls = [declared("shop", &["db1", "db2@h2"])];
        let (admitted, refused) = admit(
            &[
                ep("db1", "h1", "shop"),
                ep("db2", "h2", "shop"),
                // The right name on the wrong host.
                ep("db2", "h3", "shop"),
                ep("intruder", "h2", "shop"),
                ep("rogue", "h1", "rogue"),
                ep("odd", "h1", "a/b"),
                Endpoint::for_test("plain-id", "h1", "10.0.0.9"),
            ],
            &decls,
        );
        let names: Vec<_> = admitted
            .iter()
            .map(|e| (e.container.clone(), e.host.clone()))
            .collect();
        assert_eq!(
            names,
            [
                (Some("db1".into()), "h1".into()),
                (Some("db2".into()), "h2".into())
            ]
        );
        let refused: Vec<_> = refused
            .iter()
            .map(|r| (r.container.as_str(), r.host.as_str(), r.reason))
            .collect();
        assert_eq!(refused.len(), 4, "{refused:?}");
        assert!(
            refused[0].0 == "db2" && refused[0].1 == "h3" && refused[0].2.contains("not a member")
        );
        assert!(refused[1].0 == "intruder" && refused[1].2.contains("not a member"));
        assert!(refused[2].0 == "rogue" && refused[2].2.contains("not declared"));
        assert!(refused[3].0 == "odd" && refused[3].2.contains("not a valid"));
    }

    #[test]
    fn a_declaration_without_members_confirms_no_one() {
        let (admitted, refused) = admit(&[ep("db1", "h1", "shop")], &[declared("shop", &[])]);
        assert!(admitted.is_empty());
        assert_eq!(refused.len(), 1);
    }

    #[tokio::test]
    async fn bad_input_changes_nothing_and_members_change_by_swap() {
        let store = Store::in_memory();
        let before = store.revision().await.unwrap();
        assert!(create(&store, "a/b", &[]).await.is_err());
        assert!(create(&store, "shop", &["bad@".into()]).await.is_err());
        assert_eq!(store.revision().await.unwrap(), before);
        create(&store, "shop", &["db1".into()]).await.unwrap();
        assert!(create(&store, "shop", &[]).await.is_err());
        let d = change_members(&store, "shop", &["db2@h2".into(), "db1".into()], true)
            .await
            .unwrap();
        assert_eq!(d.members, ["db1", "db2@h2"]);
        let d = change_members(&store, "shop", &["db1".into()], false)
            .await
            .unwrap();
        assert_eq!(d.members, ["db2@h2"]);
        assert!(
            change_members(&store, "shop", &["db9".into()], false)
                .await
                .is_err()
        );
        assert_eq!(show(&store, None).await.unwrap(), [d]);
        remove(&store, "shop").await.unwrap();
        assert!(remove(&store, "shop").await.is_err());
    }
}
