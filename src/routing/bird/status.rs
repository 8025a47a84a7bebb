//! `show protocols all`, read as sessions: each BGP row, and from its
//! details whether its IPv6 channel is up.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::control::Line;
use crate::routing::bgp::SessionKind;

/// Code of `show protocols` rows.
const PROTOCOL_ROW: u16 = 1002;
/// Code of the detail lines `show protocols all` gives under each row.
const PROTOCOL_DETAIL: u16 = 1006;

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
    /// Whether the session's IPv6 channel is up (IPv6 routes flow).
    pub ipv6: bool,
}

impl SessionState {
    pub fn established(&self) -> bool {
        self.info.starts_with("Established")
    }
}

/// Rows of tabby's own BGP protocols; others (device, kernel) are left
/// out, and so are their details.
pub fn parse_protocols(lines: &[Line]) -> Vec<SessionState> {
    let mut sessions: Vec<SessionState> = Vec::new();
    // Details belong to the last row when it was a session of ours.
    let mut current: Option<usize> = None;
    let mut in_ipv6_channel = false;
    for line in lines {
        match line.code {
            PROTOCOL_ROW => {
                current = row(&line.text).map(|s| {
                    sessions.push(s);
                    sessions.len() - 1
                });
                in_ipv6_channel = false;
            }
            PROTOCOL_DETAIL => {
                let Some(i) = current else { continue };
                let text = line.text.trim();
                if let Some(channel) = text.strip_prefix("Channel ") {
                    in_ipv6_channel = channel == "ipv6";
                } else if in_ipv6_channel && let Some(state) = text.strip_prefix("State:") {
                    sessions[i].ipv6 = state.trim() == "UP";
                }
            }
            _ => {}
        }
    }
    sessions
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
        ipv6: false,
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
        assert!(!sessions[0].ipv6, "no details read: no IPv6 channel");
    }

    #[test]
    fn an_ipv6_channel_that_is_up_is_read_from_the_details() {
        let line = |code, text: &str| Line {
            code,
            text: text.into(),
        };
        let lines = vec![
            line(
                1002,
                "mesh_198_18_0_12 BGP        ---        up     2026-12-04 05:00:01  Established",
            ),
            line(1006, "  Description:    tabby mesh"),
            line(1006, "  Channel ipv4"),
            line(1006, "    State:          UP"),
            line(1006, "  Channel ipv6"),
            line(1006, "    State:          UP"),
            line(
                1002,
                "mesh_198_18_0_13 BGP        ---        up     2026-12-04 05:00:01  Established",
            ),
            line(1006, "  Channel ipv4"),
            line(1006, "    State:          UP"),
            line(1006, "  Channel ipv6"),
            line(1006, "    State:          DOWN"),
            line(
                1002,
                "tabby_kernel6 Kernel     master6    up     2026-12-04 05:00:00",
            ),
            line(1006, "  Channel ipv6"),
            line(1006, "    State:          UP"),
        ];
        let sessions = parse_protocols(&lines);
        assert_eq!(sessions.len(), 2);
        assert!(sessions[0].ipv6);
        assert!(
            !sessions[1].ipv6,
            "down, and the kernel protocol's is not its"
        );
    }
}
