//! The typed ruleset in nftables' JSON words, built with the `nftables`
//! crate's schema types. Every object lives in one table, `inet tabby`;
//! endpoint dispatch is two verdict maps keyed by interface name, so
//! finding an endpoint's chain costs the same at 10 or 10,000 endpoints.

use nftables::expr::{
    BinaryOperation, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload,
    PayloadField, Range, SetItem,
};
use nftables::schema::{Chain, NfListObject, Rule as NftRule};
use nftables::stmt::{JumpTarget, Mangle, Match as NftMatch, NAT, NATFamily, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde_json::{Value, json};
use std::borrow::Cow;

use super::family::{address, ip_field, set_field};
pub use super::family::{set, set_elements};
use crate::hash::fnv1a;
use crate::model::PortRange;
use crate::policy::model::{ACCEPT_BIT, Ct, Direction, Iface, Match, Rule, Verdict};

pub const TABLE: &str = "tabby";
pub const FAMILY: NfFamily = NfFamily::INet;
pub const FROM_MAP: &str = "tabby-from-wl";
pub const TO_MAP: &str = "tabby-to-wl";

pub fn map_name(direction: Direction) -> &'static str {
    match direction {
        Direction::From => FROM_MAP,
        Direction::To => TO_MAP,
    }
}

pub(super) fn text(s: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(s.into()))
}

pub(super) fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

pub(super) fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(nftables::expr::CT {
        key: key.into(),
        family: None,
        dir: None,
    }))
}

fn compare(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(NftMatch { left, right, op })
}

fn interface(iface: &Iface) -> Expression<'static> {
    match iface {
        Iface::Name(name) => text(name.clone()),
        Iface::Prefix(prefix) => text(format!("{prefix}*")),
    }
}

fn ports(ranges: &[PortRange]) -> Expression<'static> {
    let item = |p: &PortRange| {
        if p.first == p.last {
            Expression::Number(p.first.into())
        } else {
            Expression::Range(Box::new(Range {
                range: [
                    Expression::Number(p.first.into()),
                    Expression::Number(p.last.into()),
                ],
            }))
        }
    };
    match ranges {
        [one] => item(one),
        many => Expression::Named(NamedExpression::Set(
            many.iter().map(|p| SetItem::Element(item(p))).collect(),
        )),
    }
}

/// A conntrack condition. These are flags: "in" tests that one of the
/// bits is set; the negation must test that none is (`!=` would compare
/// the whole value and hold for almost every packet).
fn ct_match(state: Ct, negate: bool) -> Statement<'static> {
    let (key, values): (&str, &[&str]) = match state {
        Ct::Invalid => ("state", &["invalid"]),
        Ct::Established => ("state", &["established", "related"]),
        Ct::Dnat => ("status", &["dnat"]),
    };
    if negate {
        let bits = match values {
            [one] => text(*one),
            many => Expression::BinaryOperation(Box::new(BinaryOperation::OR(
                many.iter().map(|v| text(*v)).collect(),
            ))),
        };
        let masked = BinaryOperation::AND(ct(key), bits);
        return compare(
            Expression::BinaryOperation(Box::new(masked)),
            Operator::EQ,
            Expression::Number(0),
        );
    }
    let right = match values {
        [one] => text(*one),
        many => Expression::List(many.iter().map(|v| text(*v)).collect()),
    };
    compare(ct(key), Operator::IN, right)
}

fn accepted() -> Statement<'static> {
    compare(
        Expression::BinaryOperation(Box::new(BinaryOperation::AND(
            meta(MetaKey::Mark),
            Expression::Number(ACCEPT_BIT),
        ))),
        Operator::EQ,
        Expression::Number(ACCEPT_BIT),
    )
}

fn match_statement(m: &Match) -> Statement<'static> {
    let eq = |left, right| compare(left, Operator::EQ, right);
    match m {
        Match::In(i) => eq(meta(MetaKey::Iifname), interface(i)),
        Match::Out(i) => eq(meta(MetaKey::Oifname), interface(i)),
        Match::Src(net) => eq(ip_field(net, "saddr"), address(*net)),
        Match::NotSrc(net) => compare(ip_field(net, "saddr"), Operator::NEQ, address(*net)),
        Match::Dst(net) => eq(ip_field(net, "daddr"), address(*net)),
        Match::SrcSet(set) => eq(set_field(set, "saddr"), text(format!("@{set}"))),
        Match::DstSet(set) => eq(set_field(set, "daddr"), text(format!("@{set}"))),
        Match::Ipv6 => eq(meta(MetaKey::Nfproto), text("ipv6")),
        Match::Icmp6 => eq(meta(MetaKey::L4proto), text("ipv6-icmp")),
        Match::Icmp6Type(kind) => eq(
            payload("icmpv6", "type"),
            Expression::Number((*kind).into()),
        ),
        Match::Protocol(p) => eq(meta(MetaKey::L4proto), text(p.name())),
        Match::SrcPorts(p) => eq(payload("th", "sport"), ports(p)),
        Match::DstPorts(p) => eq(payload("th", "dport"), ports(p)),
        Match::Accepted => accepted(),
        Match::Ct(state) => ct_match(*state, false),
        Match::NotCt(state) => ct_match(*state, true),
        Match::DstLocal => eq(
            Expression::Named(NamedExpression::Fib(Fib {
                result: FibResult::Type,
                flags: [FibFlag::Daddr].into(),
            })),
            text("local"),
        ),
    }
}

fn set_mark(bit_on: bool) -> Statement<'static> {
    let value = if bit_on {
        BinaryOperation::OR(vec![meta(MetaKey::Mark), Expression::Number(ACCEPT_BIT)])
    } else {
        BinaryOperation::AND(meta(MetaKey::Mark), Expression::Number(!ACCEPT_BIT))
    };
    Statement::Mangle(Mangle {
        key: meta(MetaKey::Mark),
        value: Expression::BinaryOperation(Box::new(value)),
    })
}

fn jump(chain: &str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: chain.to_string().into(),
    })
}

/// A verdict's statements. An accept also sets the accept mark: iptables'
/// `FORWARD` (dockerd's, policy DROP) sees the packet after this table
/// and lets through what carries the mark.
fn verdict_statements(v: &Verdict) -> Vec<Statement<'static>> {
    match v {
        Verdict::Accept => vec![set_mark(true), Statement::Accept(None)],
        // Counted, as every iptables rule is: `nft list` shows what each
        // drop stopped.
        Verdict::Drop => vec![
            Statement::Counter(nftables::stmt::Counter::Anonymous(None)),
            Statement::Drop(None),
        ],
        Verdict::Return => vec![Statement::Return(None)],
        Verdict::Jump(chain) => vec![jump(chain)],
        Verdict::MarkAccepted => vec![set_mark(true)],
        Verdict::ClearAccepted => vec![set_mark(false)],
        Verdict::Dispatch(direction) => {
            let key = match direction {
                Direction::From => MetaKey::Iifname,
                Direction::To => MetaKey::Oifname,
            };
            vec![Statement::VerdictMap(nftables::stmt::VerdictMap {
                key: meta(key),
                data: text(format!("@{}", map_name(*direction))),
            })]
        }
        Verdict::Dnat(to) => vec![Statement::DNAT(Some(NAT {
            addr: Some(text(to.ip().to_string())),
            family: Some(if to.is_ipv6() {
                NATFamily::IP6
            } else {
                NATFamily::IP
            }),
            port: Some(Expression::Number(to.port().into())),
            flags: None,
        }))],
        Verdict::DnatMap(name, kind) => vec![super::dnat::statement(name, *kind)],
        Verdict::Masquerade => vec![Statement::Masquerade(None)],
    }
}

/// The comment that identifies a rule when the kernel's table is read
/// back: nft prints expressions in its own words, not in ours.
pub fn rule_tag(rule: &Rule) -> String {
    format!("{:016x}", fnv1a(format!("{rule:?}").as_bytes()))
}

pub fn rule(chain: &str, rule: &Rule) -> NfListObject<'static> {
    let mut expr: Vec<Statement<'static>> = rule.matches.iter().map(match_statement).collect();
    expr.extend(verdict_statements(&rule.verdict));
    NfListObject::Rule(NftRule {
        family: FAMILY,
        table: TABLE.into(),
        chain: chain.to_string().into(),
        expr: expr.into(),
        handle: None,
        index: None,
        comment: Some(rule_tag(rule).into()),
    })
}

pub fn chain(name: &str) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: FAMILY,
        table: TABLE.into(),
        name: name.to_string().into(),
        ..Chain::default()
    })
}

/// Where a built-in hook's base chain sits. Priorities put tabby first:
/// before iptables' filter (0), dstnat (-100) and srcnat (100).
#[derive(Debug, Clone, Copy)]
pub struct BaseHook {
    pub hook: NfHook,
    pub nat: bool,
    pub prio: i32,
}

pub fn base_hook(builtin: &str) -> Option<BaseHook> {
    let (hook, nat, prio) = match builtin {
        "FORWARD" => (NfHook::Forward, false, -1),
        "INPUT" => (NfHook::Input, false, -1),
        "PREROUTING" => (NfHook::Prerouting, true, -101),
        "OUTPUT" => (NfHook::Output, true, -101),
        "POSTROUTING" => (NfHook::Postrouting, true, 99),
        _ => return None,
    };
    Some(BaseHook { hook, nat, prio })
}

/// The base chain of a built-in hook, named after it in lower case; the
/// rule that enters tabby's chain is added separately.
pub fn base_chain(builtin: &str) -> Option<NfListObject<'static>> {
    let base = base_hook(builtin)?;
    Some(NfListObject::Chain(Chain {
        family: FAMILY,
        table: TABLE.into(),
        name: builtin.to_lowercase().into(),
        _type: Some(if base.nat {
            NfChainType::NAT
        } else {
            NfChainType::Filter
        }),
        hook: Some(base.hook),
        prio: Some(base.prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }))
}

/// What a dispatch entry does: jump into the endpoint's chain, or drop
/// (a quarantined veth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Jump(String),
    Drop,
}

/// A map element's verdict as nft's JSON wants it (`{"drop": null}`);
/// the crate's schema writes a bare `"drop"`, which nft refuses.
fn entry_verdict(entry: &Entry) -> Value {
    match entry {
        Entry::Jump(chain) => json!({"jump": {"target": chain}}),
        Entry::Drop => json!({"drop": null}),
    }
}

/// Elements of a verdict map, as JSON by hand for the same reason as the
/// map itself.
pub fn map_elements<'a>(
    map: &str,
    entries: impl IntoIterator<Item = (&'a String, &'a Entry)>,
) -> Value {
    let elem: Vec<Value> = entries
        .into_iter()
        .map(|(veth, entry)| json!([veth, entry_verdict(entry)]))
        .collect();
    json!({"element": {"family": "inet", "table": TABLE, "name": map, "elem": elem}})
}

/// A verdict map keyed by interface name. The crate's schema has no
/// "verdict" data type, so this one object is written as JSON by hand.
pub fn verdict_map(name: &str) -> Value {
    json!({"map": {"family": "inet", "table": TABLE, "name": name, "type": "ifname", "map": "verdict"}})
}

pub fn table() -> NfListObject<'static> {
    NfListObject::Table(nftables::schema::Table {
        family: FAMILY,
        name: TABLE.into(),
        handle: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_elements_carry_verdicts_as_nft_reads_them() {
        let (a, q) = ("tabbya".to_string(), "tabbyq".to_string());
        let entries = [(&a, &Entry::Jump("TABBY-FW-a".into())), (&q, &Entry::Drop)];
        let elements = map_elements(FROM_MAP, entries);
        assert_eq!(
            elements["element"]["elem"],
            json!([["tabbya", {"jump": {"target": "TABBY-FW-a"}}], ["tabbyq", {"drop": null}]])
        );
    }

    #[test]
    fn a_negated_flag_test_is_bitwise_and_an_accept_marks() {
        let rule = Rule::new(vec![Match::NotCt(Ct::Established)], Verdict::Accept);
        let json = serde_json::to_value(super::rule("C", &rule)).unwrap();
        let expr = &json["rule"]["expr"];
        assert_eq!(expr[0]["match"]["op"], "==");
        assert_eq!(expr[0]["match"]["right"], 0);
        assert_eq!(
            expr[0]["match"]["left"]["&"][1],
            json!({"|": ["established", "related"]})
        );
        assert!(expr[1].get("mangle").is_some(), "{expr}");
        assert!(expr[2].get("accept").is_some(), "{expr}");
    }
}
