//! The hot path without `nft`: a change to a few endpoints (their chains,
//! dispatch map elements and tag set members) goes to the kernel as one
//! nf_tables netlink batch. Spawning nft costs a process and a read of
//! the whole table into its cache, which grows with every endpoint; this
//! costs the same at 10 or 10,000. Anything the encoder does not know
//! (new sets, NAT, hooks) is left to nft's JSON.

mod expr;
mod wire;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

use super::ops::Op;
use super::translate::{Entry, TABLE, map_name, rule_tag};
use crate::policy::firewall::Error;
use expr::Code;
use wire::{Attrs, Msg};

/// Larger batches go through nft: one read of its acknowledgements must
/// fit the socket's receive buffer.
const MAX_MESSAGES: usize = 512;
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

fn elements<T>(
    attrs: &mut Attrs,
    set: &str,
    items: &[T],
    each: impl Fn(&mut Attrs, &T),
) -> Vec<u8> {
    table_and(attrs, 2, set);
    attrs.nested(3, |list| {
        for item in items {
            list.nested(1, |elem| each(elem, item));
        }
    });
    std::mem::take(attrs).into_bytes()
}

fn entry_elements(set: &str, entries: &[(String, Entry)], with_data: bool) -> Vec<u8> {
    elements(
        &mut Attrs::default(),
        set,
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

/// One operation as (message type, extra flags, attributes), or None when
/// the encoder does not know it.
fn encode(op: &Op) -> Option<(Msg, u16, Vec<u8>)> {
    let mut attrs = Attrs::default();
    let address = |elem: &mut Attrs, ip: &std::net::Ipv4Addr| {
        expr::value_data(elem, 1, &expr::address_key(*ip));
    };
    Some(match op {
        Op::AddChain(name) => {
            table_and(&mut attrs, 3, name);
            (Msg::NewChain, wire::NLM_F_CREATE, attrs.into_bytes())
        }
        Op::FlushChain(name) => {
            table_and(&mut attrs, 2, name);
            (Msg::DelRule, 0, attrs.into_bytes())
        }
        Op::DeleteChain(name) => {
            table_and(&mut attrs, 3, name);
            (Msg::DelChain, 0, attrs.into_bytes())
        }
        Op::AddRule(chain, rule) => {
            table_and(&mut attrs, 2, chain);
            expr::rule(&mut attrs, 4, rule)?;
            attrs.bytes(NFTA_RULE_USERDATA, &comment(&rule_tag(rule)));
            let flags = wire::NLM_F_CREATE | wire::NLM_F_APPEND;
            (Msg::NewRule, flags, attrs.into_bytes())
        }
        Op::AddElements(set, members) => {
            let members: Vec<_> = members.iter().copied().collect();
            let bytes = elements(&mut attrs, set, &members, address);
            (Msg::NewSetElem, wire::NLM_F_CREATE, bytes)
        }
        Op::DeleteElements(set, members) => {
            let members: Vec<_> = members.iter().copied().collect();
            (
                Msg::DelSetElem,
                0,
                elements(&mut attrs, set, &members, address),
            )
        }
        Op::AddEntries(direction, entries) => (
            Msg::NewSetElem,
            wire::NLM_F_CREATE,
            entry_elements(map_name(*direction), entries, true),
        ),
        Op::DeleteEntries(direction, entries) => (
            Msg::DelSetElem,
            0,
            entry_elements(map_name(*direction), entries, false),
        ),
        Op::AddSet(..) | Op::DeleteSet(_) => return None,
    })
}

/// The whole batch, with the sequence number of each command; None if
/// any operation is not one the encoder knows.
fn batch(ops: &[Op]) -> Option<(Vec<u8>, Vec<u32>)> {
    if ops.len() > MAX_MESSAGES {
        return None;
    }
    let base = SEQUENCE.fetch_add(ops.len() as u32 + 2, Ordering::Relaxed);
    let subsys = wire::NFNL_SUBSYS_NFTABLES;
    let mut out = wire::message(
        wire::NFNL_MSG_BATCH_BEGIN,
        wire::NLM_F_REQUEST,
        base,
        subsys,
        &[],
    );
    let mut seqs = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let (msg, flags, attrs) = encode(op)?;
        let seq = base + 1 + i as u32;
        let flags = wire::NLM_F_REQUEST | wire::NLM_F_ACK | flags;
        out.extend(wire::message(wire::nft_type(msg), flags, seq, 0, &attrs));
        seqs.push(seq);
    }
    let end = base + 1 + ops.len() as u32;
    out.extend(wire::message(
        wire::NFNL_MSG_BATCH_END,
        wire::NLM_F_REQUEST,
        end,
        subsys,
        &[],
    ));
    Some((out, seqs))
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Nftables(format!("netlink {what}: {e}"))
}

/// Sends the batch and waits for every command's acknowledgement; the
/// first refusal is the error (the kernel then applied none of it).
fn transact(bytes: &[u8], seqs: &[u32]) -> Result<(), Error> {
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io("socket"))?;
    socket.bind_auto().map_err(io("bind"))?;
    socket.set_cap_ack(true).map_err(io("option"))?;
    set_timeout(&socket)?;
    socket.send(bytes, 0).map_err(io("send"))?;
    let (first, last) = (seqs[0], seqs[seqs.len() - 1]);
    let mut answered = 0;
    let mut refused = None;
    let mut buf = vec![0u8; 64 * 1024];
    while answered < seqs.len() {
        let n = socket.recv(&mut &mut buf[..], 0).map_err(io("receive"))?;
        for (seq, errno) in wire::acks(&buf[..n]) {
            if seq + 1 == first && errno != 0 {
                // The batch itself was refused: no command will answer.
                return Err(refused_error(errno, "batch"));
            }
            if (first..=last).contains(&seq) {
                answered += 1;
                if errno != 0 && refused.is_none() {
                    refused = Some((seq - first, errno));
                }
            }
        }
    }
    match refused {
        None => Ok(()),
        Some((index, errno)) => Err(refused_error(errno, &format!("command {index}"))),
    }
}

fn refused_error(errno: i32, what: &str) -> Error {
    let reason = std::io::Error::from_raw_os_error(errno);
    Error::Nftables(format!("the kernel refused {what} of the change: {reason}"))
}

/// A kernel that never answers must not hang the agent.
fn set_timeout(socket: &Socket) -> Result<(), Error> {
    use std::os::fd::AsRawFd;
    let timeout = Duration::from_secs(5);
    let tv = nix::sys::time::TimeVal::new(timeout.as_secs() as i64, 0);
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
        .map_err(|e| io("option")(e.into()))
}

/// Applies the operations in one netlink transaction. `Ok(false)` when
/// some operation is not one this path encodes: the caller uses nft.
pub fn commit(ops: &[Op]) -> Result<bool, Error> {
    if ops.is_empty() {
        return Ok(true);
    }
    let Some((bytes, seqs)) = batch(ops) else {
        return Ok(false);
    };
    transact(&bytes, &seqs)?;
    Ok(true)
}
