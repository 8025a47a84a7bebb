//! Which firewall backend an agent runs: `--firewall auto|nftables|iptables`.

use std::sync::Arc;

use super::Firewall;
use super::iptables::IptablesFirewall;
use super::nftables::{self, NftablesFirewall};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// nftables where the kernel and an `nft` with JSON support are
    /// present, iptables otherwise.
    Auto,
    Nftables,
    Iptables,
}

impl Backend {
    /// The backend to run, resolving `auto` on this host.
    pub fn resolve(self) -> Backend {
        match self {
            Backend::Auto if nftables::available() => Backend::Nftables,
            Backend::Auto => Backend::Iptables,
            chosen => chosen,
        }
    }

    /// A firewall of this (resolved) kind. Its first pass removes what the
    /// other backend left on the host.
    pub fn firewall(self) -> Arc<dyn Firewall> {
        match self.resolve() {
            Backend::Nftables => Arc::new(NftablesFirewall::default()),
            _ => Arc::new(IptablesFirewall::default()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Nftables => "nftables",
            Backend::Iptables => "iptables",
        }
    }
}
