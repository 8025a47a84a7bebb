//! Exposed ports as nftables maps. Each kind of key (`DnatKind`) is two
//! maps keyed alike: one to the endpoint's address, one to its port, read
//! by one rule (`dnat ip to KEY map @m : KEY map @m-port`). One map with
//! concatenated values would do, but nft 1.0's JSON cannot declare one
//! (it makes a set, or crashes), and nft is the fallback writer. A kind's
//! IPv6 twin has its own maps: a map's types are fixed.

use std::net::SocketAddr;

use nftables::expr::{Expression, MetaKey, NamedExpression};
use nftables::stmt::{NAT, NATFamily, Statement};
use serde_json::{Value, json};

use super::translate::{TABLE, meta, payload, text};
use crate::policy::model::{DnatField, DnatKey, DnatKind};

/// The port map beside each address map.
pub fn port_map(name: &str) -> String {
    format!("{name}-port")
}

/// The key's fields, in order: nft's type name and the expression that
/// reads it from a packet.
fn fields(kind: DnatKind) -> Vec<(&'static str, Expression<'static>)> {
    kind.fields()
        .map(|field| match field {
            DnatField::Iface => ("ifname", meta(MetaKey::Iifname)),
            DnatField::Addr if kind.v6 => ("ipv6_addr", payload("ip6", "daddr")),
            DnatField::Addr => ("ipv4_addr", payload("ip", "daddr")),
            DnatField::Protocol => ("inet_proto", meta(MetaKey::L4proto)),
            DnatField::Port => ("inet_service", payload("th", "dport")),
        })
        .collect()
}

fn lookup(name: String, kind: DnatKind) -> Expression<'static> {
    let key = fields(kind).into_iter().map(|(_, e)| e).collect();
    Expression::Named(NamedExpression::Map(Box::new(nftables::expr::Map {
        key: Expression::Named(NamedExpression::Concat(key)),
        data: text(format!("@{name}")),
    })))
}

/// The statement of a `Verdict::DnatMap` rule.
pub fn statement(name: &str, kind: DnatKind) -> Statement<'static> {
    Statement::DNAT(Some(NAT {
        addr: Some(lookup(name.to_string(), kind)),
        family: Some(if kind.v6 {
            NATFamily::IP6
        } else {
            NATFamily::IP
        }),
        port: Some(lookup(port_map(name), kind)),
        flags: None,
    }))
}

/// Both maps' declarations, as JSON by hand: the crate's schema has no
/// concatenated key type.
pub fn declarations(name: &str, kind: DnatKind) -> [Value; 2] {
    let types: Vec<&str> = fields(kind).into_iter().map(|(t, _)| t).collect();
    let map = |name: String, data: &str| json!({"map": {"family": "inet", "table": TABLE, "name": name, "type": types, "map": data}});
    let addr = if kind.v6 { "ipv6_addr" } else { "ipv4_addr" };
    [
        map(name.to_string(), addr),
        map(port_map(name), "inet_service"),
    ]
}

/// A key as nft writes and lists it.
pub fn key_json(key: &DnatKey) -> Value {
    let mut parts: Vec<Value> = key.iface.iter().map(|i| json!(i)).collect();
    parts.extend(key.addr.map(|ip| json!(ip.to_string())));
    parts.push(json!(key.protocol.name()));
    parts.push(json!(key.port));
    json!({"concat": parts})
}

/// The two maps' values of an entry, as nft lists them.
pub fn values_json(to: &SocketAddr) -> [Value; 2] {
    [json!(to.ip().to_string()), json!(to.port())]
}

fn element(name: String, elem: Vec<Value>) -> Value {
    json!({"element": {"family": "inet", "table": TABLE, "name": name, "elem": elem}})
}

/// `add element` for both maps.
pub fn add_elements(name: &str, entries: &[(DnatKey, SocketAddr)]) -> [Value; 2] {
    let pairs = |i: usize| {
        entries
            .iter()
            .map(|(k, to)| json!([key_json(k), values_json(to)[i].clone()]))
            .collect()
    };
    [
        element(name.to_string(), pairs(0)),
        element(port_map(name), pairs(1)),
    ]
}

/// The keys to `delete element` from both maps.
pub fn key_elements(name: &str, keys: &[DnatKey]) -> [Value; 2] {
    let elem = || keys.iter().map(key_json).collect();
    [
        element(name.to_string(), elem()),
        element(port_map(name), elem()),
    ]
}
