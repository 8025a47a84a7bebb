//! The hot path without `nft`: a change to a few endpoints (their chains,
//! dispatch map elements and tag set members) goes to the kernel as one
//! nf_tables netlink batch. Spawning nft costs a process and a read of
//! the whole table into its cache, which grows with every endpoint; this
//! costs the same at 10 or 10,000. Anything the encoder does not know
//! (new sets, NAT, hooks) is left to nft's JSON.

mod dnat;
mod expr;
mod wire;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

use std::collections::BTreeSet;
use std::net::IpAddr;

use nftables::types::NfHook;

use super::ops::Op;
use super::translate::{Entry, TABLE, base_hook, map_name, rule_tag};
use crate::policy::firewall::Error;
use crate::policy::model::Direction;
use crate::policy::names::is_ipv6_set;
use expr::Code;
use wire::{Attrs, Msg};

/// (type, extra flags, attributes) of one message.
type Message = (Msg, u16, Vec<u8>);

/// Elements per message: an attribute's length is 16 bits, and a dispatch
/// element takes about 60 bytes.
const ELEMENTS_PER_MESSAGE: usize = 256;
const NFT_SET_MAP: u32 = 0x8;
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
const NF_ACCEPT: u32 = 1;
/// nft's datatype numbers, which it reads back to print elements.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const TYPE_IFNAME: u32 = 41;
const NFTA_RULE_USERDATA: u16 = 7;
const UDATA_RULE_COMMENT: u8 = 0;

static SEQUENCE: AtomicU32 = AtomicU32::new(1);

fn table_and(attrs: &mut Attrs, name_kind: u16, name: &str) {
    attrs.string(1, TABLE).string(name_kind, name);
}

/// The comment nft reads back from a rule's user data.
fn comment(text: &str) -> Vec<u8> {
    let mut out = vec![UDATA_RULE_COMMENT, (text.len() + 1) as u8];
    out.extend_from_slice(text.as_bytes());
    out.push(0);
    out
}

/// Element messages for a set, a bounded number per message: an
/// attribute's length is 16 bits.
fn elements<T>(
    msg: Msg,
    flags: u16,
    set: &str,
    items: &[T],
    each: impl Fn(&mut Attrs, &T),
) -> Vec<Message> {
    items
        .chunks(ELEMENTS_PER_MESSAGE)
        .map(|chunk| {
            let mut attrs = Attrs::default();
            table_and(&mut attrs, 2, set);
            attrs.nested(3, |list| {
                for item in chunk {
                    list.nested(1, |elem| each(elem, item));
                }
            });
            (msg, flags, attrs.into_bytes())
        })
        .collect()
}

fn entry_elements(
    msg: Msg,
    flags: u16,
    direction: Direction,
    entries: &[(String, Entry)],
) -> Vec<Message> {
    let with_data = matches!(msg, Msg::NewSetElem);
    elements(
        msg,
        flags,
        map_name(direction),
        entries,
        |elem, (veth, entry)| {
            expr::value_data(elem, 1, &expr::ifname(veth));
            if with_data {
                let code = match entry {
                    Entry::Jump(chain) => Code::Jump(chain),
                    Entry::Drop => Code::Drop,
                };
                expr::verdict_data(elem, 2, code);
            }
        },
    )
}

fn address_elements(msg: Msg, flags: u16, set: &str, members: &BTreeSet<IpAddr>) -> Vec<Message> {
    let members: Vec<_> = members.iter().copied().collect();
    elements(msg, flags, set, &members, |elem, ip| {
        expr::value_data(elem, 1, &expr::octets(*ip))
    })
}

/// A set's declaration: tag sets of addresses, dispatch maps of interface
/// names to verdicts.
fn new_set(name: &str, map: bool) -> Message {
    let mut attrs = Attrs::default();
    table_and(&mut attrs, 2, name);
    // The user data is nft's own (byte order of keys and data), which it
    // needs to print the elements back: interface names are host-order
    // strings, addresses big-endian. Byte for byte what nft 1.0 writes.
    if map {
        attrs
            .u32(3, NFT_SET_MAP)
            .u32(4, TYPE_IFNAME)
            .u32(5, 16)
            .u32(6, NFT_DATA_VERDICT)
            .u32(7, 0)
            .bytes(13, &[0, 4, 1, 0, 0, 0, 1, 4, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0]);
    } else {
        let (kind, len) = match is_ipv6_set(name) {
            false => (TYPE_IPADDR, 4),
            true => (TYPE_IP6ADDR, 16),
        };
        attrs
            .u32(3, 0)
            .u32(4, kind)
            .u32(5, len)
            .bytes(13, &[0, 4, 2, 0, 0, 0]);
    }
    // The kernel wants an ID, by which a batch may refer to a set it has
    // not committed yet; tabby refers to sets by name.
    attrs.u32(10, SEQUENCE.fetch_add(1, Ordering::Relaxed));
    (Msg::NewSet, wire::NLM_F_CREATE, attrs.into_bytes())
}

fn named(msg: Msg, flags: u16, name_kind: u16, name: &str) -> Message {
    let mut attrs = Attrs::default();
    table_and(&mut attrs, name_kind, name);
    (msg, flags, attrs.into_bytes())
}

fn base_chain(builtin: &str) -> Option<Message> {
    let base = base_hook(builtin)?;
    let hooknum = match base.hook {
        NfHook::Prerouting => 0,
        NfHook::Input => 1,
        NfHook::Forward => 2,
        NfHook::Output => 3,
        NfHook::Postrouting => 4,
        _ => return None,
    };
    let mut attrs = Attrs::default();
    table_and(&mut attrs, 3, &builtin.to_lowercase());
    attrs.nested(4, |hook| {
        hook.u32(1, hooknum).i32(2, base.prio);
    });
    attrs
        .u32(5, NF_ACCEPT)
        .string(7, if base.nat { "nat" } else { "filter" });
    Some((Msg::NewChain, wire::NLM_F_CREATE, attrs.into_bytes()))
}

fn new_rule(chain: &str, rule: &crate::policy::model::Rule) -> Option<Message> {
    let mut attrs = Attrs::default();
    table_and(&mut attrs, 2, chain);
    expr::rule(&mut attrs, 4, rule)?;
    attrs.bytes(NFTA_RULE_USERDATA, &comment(&rule_tag(rule)));
    let flags = wire::NLM_F_CREATE | wire::NLM_F_APPEND;
    Some((Msg::NewRule, flags, attrs.into_bytes()))
}

/// One operation's messages, or None when the encoder does not know it.
fn encode(op: &Op) -> Option<Vec<Message>> {
    let create = wire::NLM_F_CREATE;
    Some(match op {
        Op::AddTable => {
            let mut attrs = Attrs::default();
            attrs.string(1, TABLE).u32(2, 0);
            vec![(Msg::NewTable, create, attrs.into_bytes())]
        }
        Op::DeleteTable => {
            let mut attrs = Attrs::default();
            attrs.string(1, TABLE);
            vec![(Msg::DelTable, 0, attrs.into_bytes())]
        }
        Op::AddBaseChain(builtin) => vec![base_chain(builtin)?],
        Op::AddMap(direction) => vec![new_set(map_name(*direction), true)],
        Op::AddChain(name) => vec![named(Msg::NewChain, create, 3, name)],
        Op::FlushChain(name) => vec![named(Msg::DelRule, 0, 2, name)],
        Op::DeleteChain(name) => vec![named(Msg::DelChain, 0, 3, name)],
        Op::AddRule(chain, rule) => vec![new_rule(chain, rule)?],
        Op::AddSet(name, members) => {
            let mut out = vec![new_set(name, false)];
            out.extend(address_elements(Msg::NewSetElem, create, name, members));
            out
        }
        Op::DeleteSet(name) => vec![named(Msg::DelSet, 0, 2, name)],
        Op::AddElements(set, members) => address_elements(Msg::NewSetElem, create, set, members),
        Op::DeleteElements(set, members) => address_elements(Msg::DelSetElem, 0, set, members),
        Op::AddEntries(direction, entries) => {
            entry_elements(Msg::NewSetElem, create, *direction, entries)
        }
        Op::DeleteEntries(direction, entries) => {
            entry_elements(Msg::DelSetElem, 0, *direction, entries)
        }
        Op::AddDnatMaps(name, kind) => dnat::new_maps(name, *kind),
        Op::AddDnatEntries(name, entries) => dnat::add_entries(name, entries),
        Op::DeleteDnatEntries(name, keys) => dnat::delete_entries(name, keys),
    })
}

/// The whole batch and the sequence numbers of its first and last
/// command; None if any operation is not one the encoder knows. Only the
/// last command asks for an acknowledgement: the kernel reports every
/// refused command anyway, before it.
fn batch(ops: &[Op]) -> Option<(Vec<u8>, u32, u32)> {
    let mut messages = Vec::with_capacity(ops.len());
    for op in ops {
        messages.extend(encode(op)?);
    }
    if messages.is_empty() {
        return Some((Vec::new(), 0, 0));
    }
    let count = messages.len() as u32;
    let base = SEQUENCE.fetch_add(count + 2, Ordering::Relaxed);
    let subsys = wire::NFNL_SUBSYS_NFTABLES;
    let mut out = wire::message(
        wire::NFNL_MSG_BATCH_BEGIN,
        wire::NLM_F_REQUEST,
        base,
        subsys,
        &[],
    );
    for (i, (msg, flags, attrs)) in messages.iter().enumerate() {
        let seq = base + 1 + i as u32;
        let ack = if seq == base + count {
            wire::NLM_F_ACK
        } else {
            0
        };
        let flags = wire::NLM_F_REQUEST | ack | flags;
        out.extend(wire::message(wire::nft_type(*msg), flags, seq, 0, attrs));
    }
    let end = base + 1 + count;
    out.extend(wire::message(
        wire::NFNL_MSG_BATCH_END,
        wire::NLM_F_REQUEST,
        end,
        subsys,
        &[],
    ));
    Some((out, base + 1, base + count))
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Nftables(format!("netlink {what}: {e}"))
}

/// Sends the batch and waits for the last command's answer; a refusal
/// of any command is the error (the kernel then applied none of it).
fn transact(bytes: &[u8], first: u32, last: u32) -> Result<(), Error> {
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io("socket"))?;
    socket.bind_auto().map_err(io("bind"))?;
    socket.set_cap_ack(true).map_err(io("option"))?;
    set_options(&socket, bytes.len())?;
    socket.send(bytes, 0).map_err(io("send"))?;
    let mut refused = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = socket.recv(&mut &mut buf[..], 0).map_err(io("receive"))?;
        for (seq, errno) in wire::acks(&buf[..n]) {
            if seq + 1 == first && errno != 0 {
                // The batch itself was refused: no command will answer.
                return Err(refused_error(errno, "batch"));
            }
            if !(first..=last).contains(&seq) {
                continue;
            }
            if errno != 0 && refused.is_none() {
                refused = Some((seq - first, errno));
            }
            if seq == last {
                return match refused {
                    None => Ok(()),
                    Some((index, errno)) => Err(refused_error(errno, &format!("message {index}"))),
                };
            }
        }
    }
}

fn refused_error(errno: i32, what: &str) -> Error {
    let reason = std::io::Error::from_raw_os_error(errno);
    Error::Nftables(format!("the kernel refused {what} of the change: {reason}"))
}

/// A kernel that never answers must not hang the agent; a whole table
/// is one message larger than the default send buffer.
fn set_options(socket: &Socket, size: usize) -> Result<(), Error> {
    use nix::sys::socket::{setsockopt, sockopt};
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is the socket's, open for this whole call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    let timeout = Duration::from_secs(10);
    let tv = nix::sys::time::TimeVal::new(timeout.as_secs() as i64, 0);
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv).map_err(|e| io("option")(e.into()))?;
    if size > 128 * 1024 {
        setsockopt(&fd, sockopt::SndBufForce, &(size + 64 * 1024))
            .map_err(|e| io("send buffer")(e.into()))?;
    }
    Ok(())
}

/// Applies the operations in one netlink transaction. `Ok(false)` when
/// some operation is not one this path encodes: the caller uses nft.
pub fn commit(ops: &[Op]) -> Result<bool, Error> {
    if ops.is_empty() {
        return Ok(true);
    }
    let Some((bytes, first, last)) = batch(ops) else {
        return Ok(false);
    };
    if !bytes.is_empty() {
        transact(&bytes, first, last)?;
    }
    Ok(true)
}
