//! Exposed ports' maps over netlink: the two maps of a kind (address and
//! port, keyed alike) and their elements, byte for byte what nft 1.0
//! writes for the same `add map` and `add element` (read with strace).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use super::wire::{self, Attrs, Msg};
use super::{
    Message, NFT_SET_MAP, SEQUENCE, TYPE_IFNAME, TYPE_IP6ADDR, TYPE_IPADDR, elements, expr,
    table_and,
};
use crate::policy::model::{DnatField, DnatKey, DnatKind};
use crate::policy::nftables::dnat::port_map;

/// nft's datatype numbers (beside the module's).
const TYPE_INET_PROTO: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
/// nft's user data of these maps: key byte order by field, values
/// big-endian.
const USER_DATA: [u8; 28] = [
    0, 4, 0, 0, 0, 0, 1, 4, 2, 0, 0, 0, 3, 8, 0, 4, 0x0d, 0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0,
];

/// nft's datatype of a key field.
fn datatype(kind: DnatKind, field: DnatField) -> u32 {
    match field {
        DnatField::Iface => TYPE_IFNAME,
        DnatField::Addr if kind.v6 => TYPE_IP6ADDR,
        DnatField::Addr => TYPE_IPADDR,
        DnatField::Protocol => TYPE_INET_PROTO,
        DnatField::Port => TYPE_INET_SERVICE,
    }
}

/// How many 4-byte registers (and key words) a field takes: every field
/// is padded to 4 bytes.
pub fn slots(kind: DnatKind, field: DnatField) -> u32 {
    match field {
        DnatField::Iface => 4,
        DnatField::Addr if kind.v6 => 4,
        _ => 1,
    }
}

fn new_map(name: &str, kind: DnatKind, data_type: u32, data_len: u32) -> Message {
    // nft's concatenated type: six bits a field.
    let key_type = kind
        .fields()
        .fold(0, |acc, f| (acc << 6) | datatype(kind, f));
    let key_len = kind.fields().map(|f| 4 * slots(kind, f)).sum();
    let mut attrs = Attrs::default();
    table_and(&mut attrs, 2, name);
    attrs
        .u32(3, NFT_SET_MAP)
        .u32(4, key_type)
        .u32(5, key_len)
        .u32(6, data_type)
        .u32(7, data_len)
        .u32(10, SEQUENCE.fetch_add(1, Ordering::Relaxed))
        .bytes(13, &USER_DATA);
    (Msg::NewSet, wire::NLM_F_CREATE, attrs.into_bytes())
}

/// The address map and the port map of a kind.
pub fn new_maps(name: &str, kind: DnatKind) -> Vec<Message> {
    let (addr_type, addr_len) = if kind.v6 {
        (TYPE_IP6ADDR, 16)
    } else {
        (TYPE_IPADDR, 4)
    };
    vec![
        new_map(name, kind, addr_type, addr_len),
        new_map(&port_map(name), kind, TYPE_INET_SERVICE, 2),
    ]
}

/// A key as the kernel holds it: each field padded to 4 bytes.
fn key_bytes(key: &DnatKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(28);
    if let Some(iface) = &key.iface {
        out.extend_from_slice(&expr::ifname(iface));
    }
    if let Some(ip) = key.addr {
        out.extend_from_slice(&expr::octets(ip));
    }
    out.extend_from_slice(&[expr::protocol_number(key.protocol), 0, 0, 0]);
    out.extend_from_slice(&key.port.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

pub fn add_entries(name: &str, entries: &[(DnatKey, SocketAddr)]) -> Vec<Message> {
    let create = wire::NLM_F_CREATE;
    let mut out = elements(Msg::NewSetElem, create, name, entries, |elem, (key, to)| {
        expr::value_data(elem, 1, &key_bytes(key));
        expr::value_data(elem, 2, &expr::octets(to.ip()));
    });
    let port = port_map(name);
    out.extend(elements(
        Msg::NewSetElem,
        create,
        &port,
        entries,
        |elem, (key, to)| {
            expr::value_data(elem, 1, &key_bytes(key));
            expr::value_data(elem, 2, &to.port().to_be_bytes());
        },
    ));
    out
}

pub fn delete_entries(name: &str, keys: &[DnatKey]) -> Vec<Message> {
    let each = |elem: &mut Attrs, key: &DnatKey| expr::value_data(elem, 1, &key_bytes(key));
    let mut out = elements(Msg::DelSetElem, 0, name, keys, each);
    out.extend(elements(Msg::DelSetElem, 0, &port_map(name), keys, each));
    out
}
