//! The calicoctl v0.x rule language:
//! `allow|deny [icmp|tcp|udp] [from [ports P] [tag T] [cidr C]] [to [ports P] [tag T] [cidr C]]`
//! with P as `3306`, `80,443` or `8000:8100`. Parsing refuses anything
//! ambiguous; `Display` prints a rule back in the same language.

use std::collections::BTreeSet;
use std::fmt;

use crate::model::{Action, PortRange, Profile, Protocol, Rule, RuleMatch};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid rule: {0}")]
pub struct RuleError(pub String);

fn err(msg: impl Into<String>) -> RuleError {
    RuleError(msg.into())
}

fn parse_ports(text: &str) -> Result<Vec<PortRange>, RuleError> {
    text.split(',')
        .map(|part| {
            let (first, last) = part.split_once(':').unwrap_or((part, part));
            let parse = |p: &str| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| err(format!("bad port {p:?} in {text:?}")))
            };
            let (first, last) = (parse(first)?, parse(last)?);
            if first > last {
                return Err(err(format!("port range {part} runs backwards")));
            }
            Ok(PortRange { first, last })
        })
        .collect()
}

fn parse_match<'a>(
    words: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
) -> Result<RuleMatch, RuleError> {
    let mut m = RuleMatch::default();
    while let Some(&word) = words.peek() {
        let slot = match word {
            "ports" | "tag" | "cidr" => word,
            _ => break,
        };
        words.next();
        let value = words
            .next()
            .ok_or_else(|| err(format!("{slot} needs a value")))?;
        match slot {
            "ports" if m.ports.is_empty() => m.ports = parse_ports(value)?,
            "tag" if m.tag.is_none() => {
                crate::validate::profile_name("tag", value).map_err(|e| err(e.to_string()))?;
                m.tag = Some(value.to_string());
            }
            "cidr" if m.cidr.is_none() => {
                let cidr: ipnet::IpNet = value
                    .parse()
                    .map_err(|_| err(format!("bad CIDR {value:?}")))?;
                m.cidr = Some(cidr.trunc());
            }
            _ => return Err(err(format!("{slot} given twice"))),
        }
    }
    Ok(m)
}

pub fn parse_rule(words: &[&str]) -> Result<Rule, RuleError> {
    let mut it = words.iter().copied().peekable();
    let action = match it.next() {
        Some("allow") => Action::Allow,
        Some("deny") => Action::Deny,
        Some(other) => return Err(err(format!("{other:?} is not allow or deny"))),
        None => return Err(err("empty rule")),
    };
    let protocol = match it.peek() {
        Some(&"tcp") => Some(Protocol::Tcp),
        Some(&"udp") => Some(Protocol::Udp),
        Some(&"icmp") => Some(Protocol::Icmp),
        _ => None,
    };
    if protocol.is_some() {
        it.next();
    }
    let mut rule = Rule {
        action,
        protocol,
        from: RuleMatch::default(),
        to: RuleMatch::default(),
    };
    let (mut saw_from, mut saw_to) = (false, false);
    while let Some(word) = it.next() {
        match word {
            "from" if !saw_from && !saw_to => {
                saw_from = true;
                rule.from = parse_match(&mut it)?;
            }
            "to" if !saw_to => {
                saw_to = true;
                rule.to = parse_match(&mut it)?;
            }
            other => {
                return Err(err(format!(
                    "unexpected {other:?} (protocol must be icmp, tcp or udp)"
                )));
            }
        }
    }
    validate(&rule)?;
    Ok(rule)
}

/// Checks a rule however it was made (parsed, or read from JSON): what
/// the kernel backend cannot express is refused here, with the reason.
pub fn validate(rule: &Rule) -> Result<(), RuleError> {
    use crate::validate::ValidationError;
    crate::validate::rule(rule).map_err(|e| match e {
        ValidationError::Rule(msg) => err(msg),
        other => err(other.to_string()),
    })
}

/// The default profile, as calicoctl made it: members reach each other,
/// and may go anywhere.
pub fn default_profile(name: &str) -> Profile {
    let allow_from_self = Rule {
        action: Action::Allow,
        protocol: None,
        from: RuleMatch {
            tag: Some(name.to_string()),
            ..Default::default()
        },
        to: RuleMatch::default(),
    };
    let allow_all = Rule {
        action: Action::Allow,
        protocol: None,
        from: RuleMatch::default(),
        to: RuleMatch::default(),
    };
    Profile {
        name: name.to_string(),
        tags: BTreeSet::from([name.to_string()]),
        inbound: vec![allow_from_self],
        outbound: vec![allow_all],
    }
}

/// `80,443,8000:8100`: the rule language's form, which is also iptables'
/// multiport form.
pub fn port_list(ports: &[PortRange]) -> String {
    let list: Vec<String> = ports
        .iter()
        .map(|p| {
            if p.first == p.last {
                p.first.to_string()
            } else {
                format!("{}:{}", p.first, p.last)
            }
        })
        .collect();
    list.join(",")
}

fn write_match(f: &mut fmt::Formatter<'_>, word: &str, m: &RuleMatch) -> fmt::Result {
    if *m == RuleMatch::default() {
        return Ok(());
    }
    write!(f, " {word}")?;
    if !m.ports.is_empty() {
        write!(f, " ports {}", port_list(&m.ports))?;
    }
    if let Some(tag) = &m.tag {
        write!(f, " tag {tag}")?;
    }
    if let Some(cidr) = &m.cidr {
        write!(f, " cidr {cidr}")?;
    }
    Ok(())
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.action {
            Action::Allow => "allow",
            Action::Deny => "deny",
        })?;
        if let Some(p) = self.protocol {
            f.write_str(match p {
                Protocol::Tcp => " tcp",
                Protocol::Udp => " udp",
                Protocol::Icmp => " icmp",
            })?;
        }
        write_match(f, "from", &self.from)?;
        write_match(f, "to", &self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rule, RuleError> {
        parse_rule(&text.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn rules_round_trip() {
        for text in [
            "allow",
            "deny icmp",
            "allow tcp from tag B to ports 3306",
            "allow tcp to ports 80,443,8000:8100",
            "allow udp from ports 53 cidr 198.18.0.0/15",
            "deny from tag db cidr 198.18.1.0/24 to tag web",
        ] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        for (text, why) in [
            ("permit", "not allow or deny"),
            ("allow sctp", "protocol must be"),
            ("allow to ports 3306", "ports need tcp or udp"),
            ("allow icmp to ports 1", "ports need tcp or udp"),
            ("allow tcp to ports 0", "bad port"),
            ("allow tcp to ports 9:1", "backwards"),
            ("allow tcp to ports x", "bad port"),
            ("allow from cidr 1.2.3.4/40", "bad CIDR"),
            ("allow from tag", "needs a value"),
            ("allow from tag a tag b", "twice"),
            ("allow to tag a from tag b", "unexpected"),
            ("allow from tag a/b", "invalid tag"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
