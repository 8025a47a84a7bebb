//! `show protocols`, read as sessions.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::control::Line;
use crate::routing::bgp::SessionKind;

/// Code of `show protocols` rows.
const PROTOCOL_ROW: u16 = 1002;

/// One BGP session, as BIRD reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionState {
    pub peer: Ipv4Addr,
    #[serde(rename = "type")]
    pub kind: SessionKind,
    /// BIRD's protocol state: up, start, down…
    pub state: String,
    pub since: String,
    /// Established, Active, Connect, OpenSent…, and BIRD's last error.
    pub info: String,
}

impl SessionState {
    pub fn established(&self) -> bool {
        self.info.starts_with("Established")
    }
}

/// Rows of tabby's own BGP protocols; others (device, kernel) are left out.
pub fn parse_protocols(lines: &[Line]) -> Vec<SessionState> {
    lines
        .iter()
        .filter(|l| l.code == PROTOCOL_ROW)
        .filter_map(|l| row(&l.text))
        .collect()
}

/// `name BGP --- up 2026-12-04 05:00:01 Established`: the time takes two
/// words (`timeformat protocol iso long`).
fn row(text: &str) -> Option<SessionState> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (name, proto, state) = (words.first()?, words.get(1)?, words.get(3)?);
    if *proto != "BGP" {
        return None;
    }
    let (kind, peer) = SessionKind::parse_protocol(name)?;
    let since = words.get(4..6).map(|w| w.join(" ")).unwrap_or_default();
    let info = words.get(6..).map(|w| w.join(" ")).unwrap_or_default();
    Some(SessionState {
        peer,
        kind,
        state: state.to_string(),
        since,
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgp_rows_of_tabby_become_sessions() {
        let lines = vec![
            Line {
                code: 2002,
                text: "Name       Proto      Table      State  Since         Info".into(),
            },
            Line {
                code: 1002,
                text: "device1    Device     ---        up     2026-12-04 05:00:00".into(),
            },
            Line {
                code: 1002,
                text: "mesh_198_18_0_12 BGP        ---        up     2026-12-04 05:00:01  Established".into(),
            },
            Line {
                code: 1002,
                text: "node_198_18_1_1 BGP        ---        start  2026-12-04 05:00:01  Active        Socket: Connection refused".into(),
            },
        ];
        let sessions = parse_protocols(&lines);
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].peer, Ipv4Addr::new(198, 18, 0, 12));
        assert_eq!(sessions[0].kind, SessionKind::Mesh);
        assert!(sessions[0].established());
        assert_eq!(sessions[0].since, "2026-12-04 05:00:01");
        assert_eq!(sessions[1].kind, SessionKind::Node);
        assert_eq!(sessions[1].info, "Active Socket: Connection refused");
        assert!(!sessions[1].established());
    }
}
