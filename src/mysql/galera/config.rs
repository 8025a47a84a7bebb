//! What tabby writes into a member and reads back from it: the config file
//! the server reads at its next start, `grastate.dat`, and the position a
//! `--wsrep-recover` run logs. Pure text in, text out.

use crate::model::galera::{GaleraCluster, GaleraMember, GaleraPosition, GaleraStart, SstMethod};

/// Where tabby's file goes: Debian's my.cnf reads every `.cnf` here, and
/// arguments on the command line (the wsrep provider) still win.
pub const CONF_DIR: &str = "/etc/mysql/conf.d";
pub const CONF_NAME: &str = "zz-tabby-galera.cnf";
pub const DATA_DIR: &str = "/var/lib/mysql";
pub const GRASTATE: &str = "/var/lib/mysql/grastate.dat";

/// The first line marks the file as tabby's.
const MARK: &str = "# Written by tabby for Galera cluster";

/// The member's config for its next start. `recover` adds `wsrep_recover`,
/// which makes the server log its last committed position and exit.
/// There is no `wsrep_node_address`: a container may get another address
/// when it starts again, and Galera finds its own on the one interface.
pub fn render(cluster: &GaleraCluster, member: &GaleraMember, recover: bool) -> String {
    let address = match member.start {
        GaleraStart::NewCluster => "gcomm://".to_string(),
        GaleraStart::Join | GaleraStart::Stopped => cluster.address(),
    };
    let mut text = format!(
        "{MARK} {name}; tabby rewrites it.\n\
         [mariadbd]\n\
         wsrep_cluster_name={name}\n\
         wsrep_cluster_address={address}\n\
         wsrep_node_name={container}\n\
         wsrep_sst_method={sst}\n",
        name = cluster.name,
        container = member.container,
        sst = cluster.sst,
    );
    if cluster.sst == SstMethod::Mariabackup {
        // mariabackup logs in on the donor; `mysql`@`localhost` (made by
        // mariadb-install-db) authenticates by unix socket, no password.
        text.push_str("wsrep_sst_auth=mysql\n");
    }
    if recover {
        text.push_str("wsrep_recover=ON\n");
    }
    text
}

/// The config a server was last given before any of tabby's: until tabby
/// configures a member, it has none, and its own arguments decide.
pub fn is_tabbys(text: &str) -> bool {
    text.starts_with(MARK)
}

/// Parses `grastate.dat`: `uuid:`, `seqno:` and `safe_to_bootstrap:` lines.
pub fn parse_grastate(text: &str) -> Option<GaleraPosition> {
    let mut uuid = None;
    let mut seqno = None;
    let mut safe = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "uuid" => uuid = Some(value.to_string()),
            "seqno" => seqno = value.parse().ok(),
            "safe_to_bootstrap" => safe = value == "1",
            _ => {}
        }
    }
    Some(GaleraPosition {
        uuid: uuid?,
        seqno: seqno?,
        safe_to_bootstrap: safe,
    })
}

/// `grastate.dat` with `safe_to_bootstrap: 1`, everything else kept.
pub fn mark_safe_to_bootstrap(text: &str) -> String {
    let mut found = false;
    let mut lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("safe_to_bootstrap:") {
                found = true;
                "safe_to_bootstrap: 1".to_string()
            } else {
                line.to_string()
            }
        })
        .collect();
    if !found {
        lines.push("safe_to_bootstrap: 1".to_string());
    }
    lines.join("\n") + "\n"
}

/// The position a `--wsrep-recover` run logs:
/// `WSREP: Recovered position: 1d1d…:42`.
pub fn parse_recovered(log: &str) -> Option<(String, i64)> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("WSREP: Recovered position:"))?;
    let position = line.rsplit("Recovered position:").next()?.trim();
    let (uuid, seqno) = position.rsplit_once(':')?;
    Some((uuid.to_string(), seqno.trim().parse().ok()?))
}

/// The member to start the cluster again from: the highest last committed
/// seqno; among equals one already marked safe, then the first listed.
/// None if any position is unknown: guessing could lose transactions.
pub fn recovery_source(positions: &[(String, Option<GaleraPosition>)]) -> Option<&str> {
    let mut best: Option<(&str, &GaleraPosition)> = None;
    for (member, position) in positions {
        let position = position.as_ref()?;
        let better = match best {
            None => true,
            Some((_, b)) => {
                position.seqno > b.seqno
                    || (position.seqno == b.seqno
                        && position.safe_to_bootstrap
                        && !b.safe_to_bootstrap)
            }
        };
        if better {
            best = Some((member, position));
        }
    }
    best.map(|(m, _)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> GaleraCluster {
        let member = |c: &str, last: u8, start| GaleraMember {
            container: c.into(),
            host: "h1".into(),
            ip: [198, 19, 32, last].into(),
            start,
            restarts: 1,
            probes: 0,
            safe_to_bootstrap: false,
        };
        GaleraCluster {
            name: "shop".into(),
            sst: SstMethod::Rsync,
            members: vec![
                member("g1", 1, GaleraStart::NewCluster),
                member("g2", 2, GaleraStart::Join),
            ],
            updated: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_first_member_starts_a_cluster_and_the_others_join_every_member() {
        let c = cluster();
        let first = render(&c, &c.members[0], false);
        assert!(is_tabbys(&first));
        assert!(
            first.contains("wsrep_cluster_address=gcomm://\n"),
            "{first}"
        );
        assert!(first.contains("wsrep_node_name=g1\n"));
        let second = render(&c, &c.members[1], true);
        assert!(second.contains("wsrep_cluster_address=gcomm://198.19.32.1,198.19.32.2\n"));
        assert!(second.contains("wsrep_sst_method=rsync\n"));
        assert!(second.ends_with("wsrep_recover=ON\n"));
        assert!(!is_tabbys("[mysqld]\n"));
    }

    #[test]
    fn grastate_is_read_and_marked_safe() {
        let text = "# GALERA saved state\nversion: 2.1\nuuid:    5e7c-1\nseqno:   -1\nsafe_to_bootstrap: 0\n";
        let p = parse_grastate(text).unwrap();
        assert_eq!(
            (p.uuid.as_str(), p.seqno, p.safe_to_bootstrap),
            ("5e7c-1", -1, false)
        );
        let marked = mark_safe_to_bootstrap(text);
        assert!(parse_grastate(&marked).unwrap().safe_to_bootstrap);
        assert!(marked.contains("version: 2.1"));
        assert_eq!(parse_grastate("version: 2.1\n"), None);
    }

    #[test]
    fn the_recovered_position_is_found_in_the_log() {
        let log = "2026-12-04 [Note] InnoDB: ...\n\
                   2026-12-04 0 [Note] WSREP: Recovered position: 8b2e5c4a-b1f2-11ef-9f0e-7a3e:1042\n";
        assert_eq!(
            parse_recovered(log),
            Some(("8b2e5c4a-b1f2-11ef-9f0e-7a3e".to_string(), 1042))
        );
        assert_eq!(parse_recovered("nothing here"), None);
    }

    #[test]
    fn recovery_starts_from_the_highest_seqno_and_never_guesses() {
        let p = |seqno, safe| {
            Some(GaleraPosition {
                uuid: "u".into(),
                seqno,
                safe_to_bootstrap: safe,
            })
        };
        let positions = vec![
            ("a".to_string(), p(10, false)),
            ("b".to_string(), p(12, false)),
            ("c".to_string(), p(12, true)),
        ];
        assert_eq!(recovery_source(&positions), Some("c"));
        let unknown = vec![("a".to_string(), p(10, false)), ("b".to_string(), None)];
        assert_eq!(recovery_source(&unknown), None);
    }
}
