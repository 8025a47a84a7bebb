//! What every member must be before tabby changes anything: MariaDB with
//! the Galera provider loaded, row-based binary logs, InnoDB and the
//! interleaved auto-increment lock mode, one major version throughout,
//! and firewall profiles that let members reach each other's Galera ports.
//! Each refusal names the container, the setting and what to pass.

use std::net::Ipv4Addr;

use crate::model::{Action, Endpoint, Profile, Protocol, Rule};
use crate::mysql::sql::Flavor;
use crate::mysql::{Error, Member, Result};

pub const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

/// The settings Galera depends on, as one member reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaleraSettings {
    pub provider: String,
    pub wsrep_on: bool,
    pub binlog_format: String,
    pub autoinc_lock_mode: u32,
    pub default_engine: String,
}

pub async fn read(member: &mut Member) -> Result<GaleraSettings> {
    let row: Option<(String, u8, String, u32, String)> = member
        .first(
            "reading the Galera settings",
            "SELECT @@wsrep_provider, @@wsrep_on, @@binlog_format, \
             @@innodb_autoinc_lock_mode, @@default_storage_engine",
        )
        .await?;
    let (provider, on, binlog_format, autoinc_lock_mode, default_engine) = row.unwrap_or_default();
    Ok(GaleraSettings {
        provider,
        wsrep_on: on != 0,
        binlog_format,
        autoinc_lock_mode,
        default_engine,
    })
}

/// Refuses a member Galera cannot run on, naming what to change.
pub fn check(member: &str, flavor: &Flavor, settings: &GaleraSettings) -> Result<()> {
    let refuse = |message: String| {
        Err(Error::Check {
            member: member.to_string(),
            message,
        })
    };
    if let Flavor::MySql { major, minor, .. } = flavor {
        return refuse(format!(
            "runs MySQL {major}.{minor}: tabby's Galera clusters need MariaDB with galera-4"
        ));
    }
    if settings.provider.is_empty() || settings.provider == "none" {
        return refuse(format!(
            "wsrep_provider is none: the Galera provider is not loaded, and it cannot be \
             loaded at runtime; start the container with --wsrep-on=ON \
             --wsrep-provider={PROVIDER}"
        ));
    }
    if !settings.binlog_format.eq_ignore_ascii_case("ROW") {
        return refuse(format!(
            "binlog_format is {}, Galera needs ROW: start the container with --binlog-format=ROW",
            settings.binlog_format
        ));
    }
    if settings.autoinc_lock_mode != 2 {
        return refuse(format!(
            "innodb_autoinc_lock_mode is {}, Galera needs 2: start the container with \
             --innodb-autoinc-lock-mode=2",
            settings.autoinc_lock_mode
        ));
    }
    if !settings.default_engine.eq_ignore_ascii_case("InnoDB") {
        return refuse(format!(
            "default_storage_engine is {}, Galera replicates InnoDB only: start the container \
             with --default-storage-engine=InnoDB",
            settings.default_engine
        ));
    }
    if !settings.wsrep_on {
        return refuse("wsrep_on is OFF: start the container with --wsrep-on=ON".into());
    }
    Ok(())
}

/// Every member on one major version (10.11 and 10.6 do not mix in SST).
pub fn same_version(members: &[(String, Flavor)]) -> Result<()> {
    let version = |f: &Flavor| match f {
        Flavor::MariaDb { major, minor } | Flavor::MySql { major, minor, .. } => {
            format!("{major}.{minor}")
        }
    };
    let Some((_, first)) = members.first() else {
        return Ok(());
    };
    let differ: Vec<String> = members
        .iter()
        .filter(|(_, f)| version(f) != version(first))
        .map(|(name, f)| format!("{name} runs {}", version(f)))
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{} runs {} but {}: run one MariaDB version on every member",
        members[0].0,
        version(first),
        differ.join(", ")
    )))
}

/// The ports Galera members reach each other on: replication, IST, SST.
const GALERA_PORTS: [(Protocol, u16); 4] = [
    (Protocol::Tcp, 4567),
    (Protocol::Udp, 4567),
    (Protocol::Tcp, 4568),
    (Protocol::Tcp, 4444),
];

/// Galera's ports between members: members that share a profile already
/// allow each other (a profile admits its own tag); others must have
/// inbound rules that let each other in, or are refused with the rules to
/// add.
pub fn profiles(members: &[(String, &Endpoint)], known: &[Profile]) -> Result<()> {
    let profile = |name: &str| known.iter().find(|p| p.name == name);
    let mut missing = Vec::new();
    for (a, to) in members {
        for (b, from) in members {
            if a == b || to.profiles.iter().any(|p| from.profiles.contains(p)) {
                continue;
            }
            let from_tags: Vec<&String> = from
                .profiles
                .iter()
                .filter_map(|p| profile(p))
                .flat_map(|p| &p.tags)
                .collect();
            let open = GALERA_PORTS.iter().all(|&(protocol, port)| {
                to.profiles
                    .iter()
                    .filter_map(|p| profile(p))
                    .any(|p| admits(p, &from_tags, from.ip, protocol, port))
            });
            let (Some(to_profile), Some(from_profile)) =
                (to.profiles.first(), from.profiles.first())
            else {
                continue;
            };
            if open {
                continue;
            }
            let tag = profile(from_profile)
                .and_then(|p| p.tags.iter().next().cloned())
                .unwrap_or_else(|| from_profile.clone());
            for rule in [
                format!(
                    "tabby profile {to_profile} rule add inbound allow tcp from tag {tag} to ports 4567,4568,4444"
                ),
                format!(
                    "tabby profile {to_profile} rule add inbound allow udp from tag {tag} to ports 4567"
                ),
            ] {
                if !missing.contains(&rule) {
                    missing.push(rule);
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "members are in different profiles, so Galera's ports (4567 tcp and udp, 4568, 4444) \
         are closed between them; put them on one network, or run:\n  {}",
        missing.join("\n  ")
    )))
}

/// Whether a profile's first matching inbound rule lets this source in.
fn admits(
    profile: &Profile,
    tags: &[&String],
    ip: Ipv4Addr,
    protocol: Protocol,
    port: u16,
) -> bool {
    let matches = |rule: &Rule| {
        rule.protocol.is_none_or(|p| p == protocol)
            && rule.from.tag.as_ref().is_none_or(|t| tags.contains(&t))
            && rule
                .from
                .cidr
                .is_none_or(|c| c.contains(&std::net::IpAddr::V4(ip)))
            && rule.from.ports.is_empty()
            && (rule.to.ports.is_empty()
                || rule
                    .to
                    .ports
                    .iter()
                    .any(|r| r.first <= port && port <= r.last))
    };
    profile
        .inbound
        .iter()
        .find(|rule| matches(rule))
        .is_some_and(|rule| rule.action == Action::Allow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::default_profile;

    fn good() -> GaleraSettings {
        GaleraSettings {
            provider: PROVIDER.into(),
            wsrep_on: true,
            binlog_format: "ROW".into(),
            autoinc_lock_mode: 2,
            default_engine: "InnoDB".into(),
        }
    }

    #[test]
    fn each_missing_setting_is_named_with_what_to_pass() {
        let mariadb = Flavor::MariaDb {
            major: 10,
            minor: 11,
        };
        assert!(check("g1", &mariadb, &good()).is_ok());
        type Spoil = fn(&mut GaleraSettings);
        let cases: [(Spoil, &str); 4] = [
            (
                |s| s.provider = "none".into(),
                "--wsrep-provider=/usr/lib/galera",
            ),
            (|s| s.binlog_format = "MIXED".into(), "--binlog-format=ROW"),
            (|s| s.autoinc_lock_mode = 1, "--innodb-autoinc-lock-mode=2"),
            (
                |s| s.default_engine = "Aria".into(),
                "--default-storage-engine=InnoDB",
            ),
        ];
        for (spoil, fix) in cases {
            let mut s = good();
            spoil(&mut s);
            let err = check("g2 (198.19.32.2 on h2)", &mariadb, &s)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("g2 (198.19.32.2 on h2): ") && err.contains(fix),
                "{err}"
            );
        }
        let mysql = Flavor::MySql {
            major: 8,
            minor: 0,
            patch: 36,
        };
        assert!(
            check("m", &mysql, &good())
                .unwrap_err()
                .to_string()
                .contains("MariaDB")
        );
    }

    #[test]
    fn mixed_versions_are_refused() {
        let v = |major, minor| Flavor::MariaDb { major, minor };
        assert!(same_version(&[("a".into(), v(10, 11)), ("b".into(), v(10, 11))]).is_ok());
        let err = same_version(&[("a".into(), v(10, 11)), ("b".into(), v(11, 4))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("b runs 11.4"), "{err}");
    }

    #[test]
    fn members_of_different_profiles_get_the_rules_to_add() {
        let endpoint = |id, host, ip, profile: &str| Endpoint {
            profiles: vec![profile.to_string()],
            ..Endpoint::for_test(id, host, ip)
        };
        let a = endpoint("e1", "h1", "198.19.32.1", "db");
        let b = endpoint("e2", "h2", "198.19.32.2", "db");
        let c = endpoint("e3", "h3", "198.19.48.3", "web");
        let mut known = vec![default_profile("db"), default_profile("web")];
        assert!(profiles(&[("a".into(), &a), ("b".into(), &b)], &known).is_ok());
        let err = profiles(&[("a".into(), &a), ("c".into(), &c)], &known)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "tabby profile web rule add inbound allow tcp from tag db to ports 4567,4568,4444"
            ) && err
                .contains("tabby profile db rule add inbound allow udp from tag web to ports 4567"),
            "{err}"
        );
        // With the rules it printed, both ways, they pass.
        let rule = |proto: &str, from: &str, ports: &str| {
            let text = format!("allow {proto} from tag {from} to ports {ports}");
            let words: Vec<&str> = text.split_whitespace().collect();
            crate::policy::rules::parse_rule(&words).unwrap()
        };
        known[0].inbound.push(rule("tcp", "web", "4567,4568,4444"));
        known[0].inbound.push(rule("udp", "web", "4567"));
        assert!(profiles(&[("a".into(), &a), ("c".into(), &c)], &known).is_err());
        known[1].inbound.push(rule("tcp", "db", "4567,4568,4444"));
        known[1].inbound.push(rule("udp", "db", "4567"));
        assert!(profiles(&[("a".into(), &a), ("c".into(), &c)], &known).is_ok());
    }
}
