//! What differs between IPv4 and IPv6 in nftables' JSON words: which
//! header an address is read from, and set types. The inet table sees
//! both families; an `ip` or `ip6` payload match also tests the family.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use nftables::expr::{Expression, NamedExpression, Prefix};
use nftables::schema::{NfListObject, Set, SetType, SetTypeValue};

use super::translate::{FAMILY, TABLE, payload, text};
use crate::policy::names::is_ipv6_set;

fn header(v6: bool) -> &'static str {
    if v6 { "ip6" } else { "ip" }
}

/// An address field of the header of `net`'s family.
pub fn ip_field(net: &IpNet, field: &'static str) -> Expression<'static> {
    payload(header(net.addr().is_ipv6()), field)
}

/// An address field of the header of the set's family.
pub fn set_field(set: &str, field: &'static str) -> Expression<'static> {
    payload(header(is_ipv6_set(set)), field)
}

pub fn address(net: IpNet) -> Expression<'static> {
    if net.prefix_len() == net.max_prefix_len() {
        text(net.addr().to_string())
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(text(net.network().to_string())),
            len: net.prefix_len().into(),
        }))
    }
}

fn addresses(members: &BTreeSet<IpAddr>) -> Vec<Expression<'static>> {
    members.iter().map(|ip| text(ip.to_string())).collect()
}

pub fn set(name: &str, members: &BTreeSet<IpAddr>) -> NfListObject<'static> {
    let kind = match is_ipv6_set(name) {
        false => SetType::Ipv4Addr,
        true => SetType::Ipv6Addr,
    };
    NfListObject::Set(Box::new(Set {
        family: FAMILY,
        table: TABLE.into(),
        name: name.to_string().into(),
        set_type: SetTypeValue::Single(kind),
        elem: (!members.is_empty()).then(|| addresses(members).into()),
        ..Set::default()
    }))
}

pub fn set_elements(name: &str, members: &BTreeSet<IpAddr>) -> NfListObject<'static> {
    NfListObject::Element(nftables::schema::Element {
        family: FAMILY,
        table: TABLE.into(),
        name: name.to_string().into(),
        elem: addresses(members).into(),
    })
}
