//! DNAT as expressions: a map's key read into registers, the lookups of
//! address and port, and the NAT expression that takes them.

use super::{
    CMP_EQ, Exprs, META_IIFNAME, META_L4PROTO, META_NFPROTO, NAT_DNAT, NAT_RANGE_PROTO_SPECIFIED,
    NFPROTO_IPV4, NFPROTO_IPV6, PAYLOAD_NETWORK, PAYLOAD_TRANSPORT, REG_1, REG_2, register,
};
use crate::policy::model::{DnatField, DnatKind};
use crate::policy::nftables::dnat::port_map;

impl Exprs<'_> {
    /// A DNAT map's key, its fields in 4-byte registers from `slot` on.
    fn dnat_key(&mut self, kind: DnatKind, mut slot: u32) {
        for field in kind.fields() {
            let reg = register(slot);
            match field {
                DnatField::Iface => self.meta_to(reg, META_IIFNAME),
                DnatField::Addr if kind.v6 => self.payload_to(reg, PAYLOAD_NETWORK, 24, 16),
                DnatField::Addr => self.payload_to(reg, PAYLOAD_NETWORK, 16, 4),
                DnatField::Protocol => self.meta_to(reg, META_L4PROTO),
                DnatField::Port => self.payload_to(reg, PAYLOAD_TRANSPORT, 2, 2),
            }
            slot += super::super::dnat::slots(kind, field);
        }
    }

    /// `dnat ip to KEY map @m : KEY map @m-port` (`ip6` for IPv6): the
    /// address lands in register 1, the port in register 2, as nft lays
    /// it out.
    pub(super) fn dnat_map(&mut self, name: &str, kind: DnatKind) {
        let family = if kind.v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 };
        if kind.addr {
            self.meta_load(META_NFPROTO);
            self.cmp(CMP_EQ, &[family]);
        }
        for (map, reg) in [(name.to_string(), REG_1), (port_map(name), REG_2)] {
            self.dnat_key(kind, (reg - 1) * 4);
            self.expr("lookup", |a| {
                a.string(1, &map).u32(2, reg).u32(3, reg);
            });
        }
        self.nat(family, REG_1, REG_2);
    }

    pub(super) fn nat(&mut self, family: u8, addr: u32, port: u32) {
        self.expr("nat", |a| {
            a.u32(1, NAT_DNAT)
                .u32(2, family.into())
                .u32(3, addr)
                .u32(5, port)
                .u32(7, NAT_RANGE_PROTO_SPECIFIED);
        });
    }
}
