//! Rules as nf_tables expressions, byte for byte what nft 1.0 makes of the
//! same rule in JSON (checked against `nft --debug=netlink`), so that
//! `nft list` reads them back alike. A match this does not encode (a port
//! list, which nft makes an anonymous set) is `None`: nft writes it.

use std::net::IpAddr;

use ipnet::IpNet;

use super::wire::Attrs;
use crate::model::{PortRange, Protocol};
use crate::policy::model::{ACCEPT_BIT, Ct, Direction, Iface, Match, Rule, Verdict};
use crate::policy::names::is_ipv6_set;
use crate::policy::nftables::translate::map_name;

const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFT_JUMP: i32 = -3;
const NFT_RETURN: i32 = -5;
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const CMP_LTE: u32 = 3;
const CMP_GTE: u32 = 5;
const META_MARK: u32 = 3;
const META_IIFNAME: u32 = 6;
const META_OIFNAME: u32 = 7;
const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;
const PAYLOAD_NETWORK: u32 = 1;
const PAYLOAD_TRANSPORT: u32 = 2;
const CT_STATE: u32 = 0;
const CT_STATUS: u32 = 2;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const IPPROTO_ICMPV6: u8 = 58;
const IFNAMSIZ: usize = 16;
const REG_2: u32 = 2;
const FIB_RESULT_ADDRTYPE: u32 = 3;
const FIB_F_DADDR: u32 = 2;
const RTN_LOCAL: u32 = 2;
const NAT_DNAT: u32 = 1;
const NAT_RANGE_PROTO_SPECIFIED: u32 = 2;

/// A verdict as set-element or immediate data.
#[derive(Debug, Clone, Copy)]
pub enum Code<'a> {
    Accept,
    Drop,
    Return,
    Jump(&'a str),
}

pub fn verdict_data(attrs: &mut Attrs, kind: u16, code: Code<'_>) {
    attrs.nested(kind, |data| {
        data.nested(NFTA_DATA_VERDICT, |v| {
            let (value, chain) = match code {
                Code::Accept => (NF_ACCEPT, None),
                Code::Drop => (NF_DROP, None),
                Code::Return => (NFT_RETURN, None),
                Code::Jump(chain) => (NFT_JUMP, Some(chain)),
            };
            v.i32(NFTA_VERDICT_CODE, value);
            if let Some(chain) = chain {
                v.string(NFTA_VERDICT_CHAIN, chain);
            }
        });
    });
}

pub fn value_data(attrs: &mut Attrs, kind: u16, value: &[u8]) {
    attrs.nested(kind, |data| {
        data.bytes(NFTA_DATA_VALUE, value);
    });
}

/// An interface name as the kernel keys it: NUL-padded to IFNAMSIZ.
pub fn ifname(name: &str) -> [u8; IFNAMSIZ] {
    let mut out = [0; IFNAMSIZ];
    let bytes = name.as_bytes();
    let len = bytes.len().min(IFNAMSIZ - 1);
    out[..len].copy_from_slice(&bytes[..len]);
    out
}

/// nft's name of the register that holds 4-byte slot `slot`: a 16-byte
/// register where one starts there (`reg 2` is slot 4), else a 4-byte one.
fn register(slot: u32) -> u32 {
    if slot % 4 == 0 {
        1 + slot / 4
    } else {
        8 + slot
    }
}

mod nat;

/// The expressions of one rule, appended to a list.
struct Exprs<'a>(&'a mut Attrs);

impl Exprs<'_> {
    fn expr(&mut self, name: &str, data: impl FnOnce(&mut Attrs)) {
        self.0.nested(NFTA_LIST_ELEM, |elem| {
            elem.string(1, name);
            elem.nested(2, data);
        });
    }

    fn meta_load(&mut self, key: u32) {
        self.meta_to(REG_1, key);
    }

    fn meta_to(&mut self, reg: u32, key: u32) {
        self.expr("meta", |a| {
            a.u32(1, reg).u32(2, key);
        });
    }

    fn cmp(&mut self, op: u32, value: &[u8]) {
        self.expr("cmp", |a| {
            a.u32(1, REG_1).u32(2, op);
            value_data(a, 3, value);
        });
    }

    fn payload(&mut self, base: u32, offset: u32, len: u32) {
        self.payload_to(REG_1, base, offset, len);
    }

    fn payload_to(&mut self, reg: u32, base: u32, offset: u32, len: u32) {
        self.expr("payload", |a| {
            a.u32(1, reg).u32(2, base).u32(3, offset).u32(4, len);
        });
    }

    fn bitwise(&mut self, mask: &[u8], xor: &[u8]) {
        self.expr("bitwise", |a| {
            a.u32(1, REG_1).u32(2, REG_1).u32(3, mask.len() as u32);
            value_data(a, 4, mask);
            value_data(a, 5, xor);
        });
    }

    fn ct_load(&mut self, key: u32) {
        self.expr("ct", |a| {
            a.u32(1, REG_1).u32(2, key);
        });
    }

    fn immediate(&mut self, reg: u32, value: &[u8]) {
        self.expr("immediate", |a| {
            a.u32(1, reg);
            value_data(a, 2, value);
        });
    }

    fn verdict(&mut self, code: Code<'_>) {
        self.expr("immediate", |a| {
            a.u32(1, REG_VERDICT);
            verdict_data(a, 2, code);
        });
    }

    /// `meta mark set meta mark & ~BIT | BIT` (or without the bit).
    fn set_mark(&mut self, on: bool) {
        self.meta_load(META_MARK);
        let xor = if on { ACCEPT_BIT } else { 0 };
        self.bitwise(&(!ACCEPT_BIT).to_ne_bytes(), &xor.to_ne_bytes());
        self.expr("meta", |a| {
            a.u32(2, META_MARK).u32(3, REG_1);
        });
    }

    /// The source (or destination) address of a packet of the family, in
    /// register 1; packets of the other family fail the match here.
    fn ip_field(&mut self, v6: bool, src: bool) {
        self.meta_load(META_NFPROTO);
        let (family, offset, len) = match (v6, src) {
            (false, true) => (NFPROTO_IPV4, 12, 4),
            (false, false) => (NFPROTO_IPV4, 16, 4),
            (true, true) => (NFPROTO_IPV6, 8, 16),
            (true, false) => (NFPROTO_IPV6, 24, 16),
        };
        self.cmp(CMP_EQ, &[family]);
        self.payload(PAYLOAD_NETWORK, offset, len);
    }

    fn address(&mut self, src: bool, net: IpNet, op: u32) {
        self.ip_field(net.addr().is_ipv6(), src);
        if net.prefix_len() < net.max_prefix_len() {
            let zero = vec![0; octets(net.netmask()).len()];
            self.bitwise(&octets(net.netmask()), &zero);
        }
        self.cmp(op, &octets(net.network()));
    }

    fn lookup(&mut self, src: bool, set: &str) {
        self.ip_field(is_ipv6_set(set), src);
        self.expr("lookup", |a| {
            a.string(1, set).u32(2, REG_1);
        });
    }

    fn ports(&mut self, offset: u32, ranges: &[PortRange]) -> Option<()> {
        let [range] = ranges else { return None };
        self.payload(PAYLOAD_TRANSPORT, offset, 2);
        if range.first == range.last {
            self.cmp(CMP_EQ, &range.first.to_be_bytes());
        } else {
            self.cmp(CMP_GTE, &range.first.to_be_bytes());
            self.cmp(CMP_LTE, &range.last.to_be_bytes());
        }
        Some(())
    }

    /// A flag test: some bit set, or (negated) none of them.
    fn ct(&mut self, state: Ct, negate: bool) {
        let (key, bits): (u32, u32) = match state {
            Ct::Invalid => (CT_STATE, 0x1),
            Ct::Established => (CT_STATE, 0x2 | 0x4),
            Ct::Dnat => (CT_STATUS, 0x20),
        };
        self.ct_load(key);
        self.bitwise(&bits.to_ne_bytes(), &[0; 4]);
        self.cmp(if negate { CMP_EQ } else { CMP_NEQ }, &[0; 4]);
    }

    fn interface(&mut self, key: u32, iface: &Iface) {
        self.meta_load(key);
        match iface {
            Iface::Name(name) => self.cmp(CMP_EQ, &ifname(name)),
            Iface::Prefix(prefix) => self.cmp(CMP_EQ, prefix.as_bytes()),
        }
    }

    fn matches(&mut self, m: &Match) -> Option<()> {
        match m {
            Match::In(i) => self.interface(META_IIFNAME, i),
            Match::Out(i) => self.interface(META_OIFNAME, i),
            Match::Src(net) => self.address(true, *net, CMP_EQ),
            Match::NotSrc(net) => self.address(true, *net, CMP_NEQ),
            Match::Dst(net) => self.address(false, *net, CMP_EQ),
            Match::SrcSet(set) => self.lookup(true, set),
            Match::DstSet(set) => self.lookup(false, set),
            Match::Ipv6 => {
                self.meta_load(META_NFPROTO);
                self.cmp(CMP_EQ, &[NFPROTO_IPV6]);
            }
            Match::Icmp6 => {
                self.meta_load(META_L4PROTO);
                self.cmp(CMP_EQ, &[IPPROTO_ICMPV6]);
            }
            Match::Icmp6Type(kind) => {
                self.meta_load(META_NFPROTO);
                self.cmp(CMP_EQ, &[NFPROTO_IPV6]);
                self.meta_load(META_L4PROTO);
                self.cmp(CMP_EQ, &[IPPROTO_ICMPV6]);
                self.payload(PAYLOAD_TRANSPORT, 0, 1);
                self.cmp(CMP_EQ, &[*kind]);
            }
            Match::Protocol(p) => {
                self.meta_load(META_L4PROTO);
                self.cmp(CMP_EQ, &[protocol_number(*p)]);
            }
            Match::SrcPorts(p) => self.ports(0, p)?,
            Match::DstPorts(p) => self.ports(2, p)?,
            Match::Accepted => {
                self.meta_load(META_MARK);
                self.bitwise(&ACCEPT_BIT.to_ne_bytes(), &[0; 4]);
                self.cmp(CMP_EQ, &ACCEPT_BIT.to_ne_bytes());
            }
            Match::Ct(state) => self.ct(*state, false),
            Match::NotCt(state) => self.ct(*state, true),
            Match::DstLocal => {
                self.expr("fib", |a| {
                    a.u32(1, REG_1)
                        .u32(2, FIB_RESULT_ADDRTYPE)
                        .u32(3, FIB_F_DADDR);
                });
                self.cmp(CMP_EQ, &RTN_LOCAL.to_ne_bytes());
            }
        }
        Some(())
    }

    fn verdicts(&mut self, v: &Verdict) -> Option<()> {
        match v {
            Verdict::Accept => {
                self.set_mark(true);
                self.verdict(Code::Accept);
            }
            Verdict::Drop => {
                self.expr("counter", |_| {});
                self.verdict(Code::Drop);
            }
            Verdict::Return => self.verdict(Code::Return),
            Verdict::Jump(chain) => self.verdict(Code::Jump(chain)),
            Verdict::MarkAccepted => self.set_mark(true),
            Verdict::ClearAccepted => self.set_mark(false),
            Verdict::Dispatch(direction) => {
                let key = match direction {
                    Direction::From => META_IIFNAME,
                    Direction::To => META_OIFNAME,
                };
                self.meta_load(key);
                self.expr("lookup", |a| {
                    a.string(1, map_name(*direction))
                        .u32(2, REG_1)
                        .u32(3, REG_VERDICT);
                });
            }
            Verdict::Dnat(to) => {
                let family = if to.is_ipv6() {
                    NFPROTO_IPV6
                } else {
                    NFPROTO_IPV4
                };
                self.immediate(REG_1, &octets(to.ip()));
                self.immediate(REG_2, &to.port().to_be_bytes());
                self.nat(family, REG_1, REG_2);
            }
            Verdict::DnatMap(name, kind) => self.dnat_map(name, *kind),
            Verdict::Masquerade => self.expr("masq", |_| {}),
        }
        Some(())
    }
}

/// An address as the kernel holds it: 4 or 16 bytes, network order.
pub fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

pub fn protocol_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Icmp => 1,
    }
}

/// The rule's expression list, or None if it uses something not encoded
/// here.
pub fn rule(attrs: &mut Attrs, kind: u16, rule: &Rule) -> Option<()> {
    let mut ok = Some(());
    attrs.nested(kind, |list| {
        let mut exprs = Exprs(list);
        ok = rule
            .matches
            .iter()
            .try_for_each(|m| exprs.matches(m))
            .and_then(|()| exprs.verdicts(&rule.verdict));
    });
    ok
}
