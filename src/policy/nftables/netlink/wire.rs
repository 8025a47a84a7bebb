//! nf_tables' netlink wire format, as far as tabby writes it: netlink
//! headers, the netfilter header, and attributes (nested ones too). The
//! numbers are the kernel's (`linux/netfilter/nf_tables.h`,
//! `nfnetlink.h`); every integer attribute travels in network order.

pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
pub const NFPROTO_INET: u8 = 1;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
pub const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;

/// nf_tables message types.
#[derive(Debug, Clone, Copy)]
#[repr(u16)]
pub enum Msg {
    NewTable = 0,
    DelTable = 2,
    NewChain = 3,
    DelChain = 5,
    NewRule = 6,
    DelRule = 8,
    NewSet = 9,
    DelSet = 11,
    NewSetElem = 12,
    DelSetElem = 14,
}

/// Attributes being written; `nested` opens a container attribute.
#[derive(Default)]
pub struct Attrs {
    buf: Vec<u8>,
}

impl Attrs {
    pub fn bytes(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    pub fn u32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    /// A verdict code is a signed value (jump is -3) sent as a u32.
    pub fn i32(&mut self, kind: u16, value: i32) -> &mut Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    /// A NUL-terminated string, as the kernel's `NLA_STRING` wants it.
    pub fn string(&mut self, kind: u16, value: &str) -> &mut Self {
        let mut data = Vec::with_capacity(value.len() + 1);
        data.extend_from_slice(value.as_bytes());
        data.push(0);
        self.bytes(kind, &data)
    }

    pub fn nested(&mut self, kind: u16, inner: impl FnOnce(&mut Attrs)) -> &mut Self {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        let mut child = Attrs {
            buf: std::mem::take(&mut self.buf),
        };
        inner(&mut child);
        self.buf = child.buf;
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf[start + 2..start + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// One netlink message: header, netfilter header and attributes.
pub fn message(kind: u16, flags: u16, seq: u32, res_id: u16, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[NFPROTO_INET, 0]);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
    out
}

/// The message type of an nf_tables command.
pub fn nft_type(msg: Msg) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg as u16
}

/// (sequence, errno) of each acknowledgement in a receive buffer: 0 for
/// success, a positive errno for a refusal.
pub fn acks(mut buf: &[u8]) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(buf[4..6].try_into().expect("2 bytes"));
        let seq = u32::from_ne_bytes(buf[8..12].try_into().expect("4 bytes"));
        if len < 16 || len > buf.len() {
            break;
        }
        if kind == NLMSG_ERROR && len >= 20 {
            let code = i32::from_ne_bytes(buf[16..20].try_into().expect("4 bytes"));
            out.push((seq, -code));
        }
        buf = &buf[(len + 3) & !3..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_carry_their_length_and_flag() {
        let mut attrs = Attrs::default();
        attrs.string(1, "ab").nested(2, |inner| {
            inner.u32(1, 7);
        });
        let bytes = attrs.into_bytes();
        // "ab\0" pads to 8; the nest is 4 + 8.
        assert_eq!(&bytes[0..4], &[7, 0, 1, 0]);
        assert_eq!(&bytes[4..7], b"ab\0");
        assert_eq!(&bytes[8..12], &[12, 0, 2, 0x80]);
        assert_eq!(&bytes[16..20], &[0, 0, 0, 7]);
    }

    #[test]
    fn acknowledgements_are_read_with_their_errno() {
        let mut buf = Vec::new();
        for (seq, code) in [(5u32, 0i32), (6, -17)] {
            buf.extend_from_slice(&36u32.to_ne_bytes());
            buf.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            buf.extend_from_slice(&0u16.to_ne_bytes());
            buf.extend_from_slice(&seq.to_ne_bytes());
            buf.extend_from_slice(&0u32.to_ne_bytes());
            buf.extend_from_slice(&code.to_ne_bytes());
            buf.extend_from_slice(&[0; 16]);
        }
        assert_eq!(acks(&buf), vec![(5, 0), (6, 17)]);
    }
}
