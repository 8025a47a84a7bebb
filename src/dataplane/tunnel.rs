//! Converges `tabby.vxlan` to what the cluster needs: absent when no pool
//! encapsulates; else made as specified (remade when it drifted), with
//! exactly one neighbour and one FDB entry per peer it tunnels to. A link
//! of that name tabby did not make is never changed or removed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use tracing::{info, warn};

use super::vxlan::{Mac, VXLAN_DEVICE, VXLAN_VNI, VxlanLink, VxlanSpec, mac_text};
use super::{Dataplane, Error};

/// What one pass changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TunnelDiff {
    /// The device was made (or remade after drift).
    pub created: bool,
    pub removed: bool,
    pub peers_put: Vec<Ipv4Addr>,
    pub entries_removed: usize,
}

impl TunnelDiff {
    pub fn changed(&self) -> bool {
        self.created || self.removed || !self.peers_put.is_empty() || self.entries_removed > 0
    }
}

fn as_wanted(link: &VxlanLink, spec: &VxlanSpec) -> bool {
    link.up
        && link.spec.as_ref() == Some(spec)
        && link.vni == Some(VXLAN_VNI)
        && link.learning == Some(false)
}

impl Dataplane {
    /// See the module comment; `desired` is None when no pool encapsulates.
    pub async fn converge_tunnel(
        &self,
        desired: Option<(&VxlanSpec, &BTreeMap<Ipv4Addr, Mac>)>,
    ) -> Result<TunnelDiff, Error> {
        let mut diff = TunnelDiff::default();
        let link = self.netlink.vxlan_link().await?;
        let Some((spec, peers)) = desired else {
            if link.is_some_and(|l| l.ours) {
                self.netlink.delete_link(VXLAN_DEVICE).await?;
                info!(
                    device = VXLAN_DEVICE,
                    "removed the tunnel: no pool needs it"
                );
                diff.removed = true;
            }
            return Ok(diff);
        };
        let index = match link {
            Some(l) if !l.ours => {
                warn!(
                    device = VXLAN_DEVICE,
                    "a link of this name is not tabby's: left alone, no tunnel"
                );
                return Err(Error::Foreign(VXLAN_DEVICE.into()));
            }
            Some(l) if as_wanted(&l, spec) => l.index,
            other => {
                if other.is_some() {
                    warn!(
                        device = VXLAN_DEVICE,
                        "tunnel drifted from its settings; making it again"
                    );
                    self.netlink.delete_link(VXLAN_DEVICE).await?;
                }
                self.netlink.create_vxlan(spec).await?;
                info!(device = VXLAN_DEVICE, local = %spec.local, mtu = spec.mtu, "made the tunnel");
                diff.created = true;
                self.netlink
                    .vxlan_link()
                    .await?
                    .ok_or_else(|| Error::LinkMissing(VXLAN_DEVICE.into()))?
                    .index
            }
        };
        self.converge_peers(index, peers, &mut diff).await?;
        Ok(diff)
    }

    async fn converge_peers(
        &self,
        index: u32,
        peers: &BTreeMap<Ipv4Addr, Mac>,
        diff: &mut TunnelDiff,
    ) -> Result<(), Error> {
        let entries = self.netlink.tunnel_entries(index).await?;
        for (ip, mac) in peers {
            if entries.neighbours.get(ip) != Some(mac) || entries.fdb.get(mac) != Some(ip) {
                self.netlink.put_tunnel_peer(index, *ip, mac).await?;
                info!(peer = %ip, mac = %mac_text(mac), "tunnel peer entries set");
                diff.peers_put.push(*ip);
            }
        }
        for ip in entries
            .neighbours
            .keys()
            .filter(|ip| !peers.contains_key(ip))
        {
            self.netlink.delete_tunnel_neighbour(index, *ip).await?;
            info!(peer = %ip, "tunnel neighbour removed");
            diff.entries_removed += 1;
        }
        let macs: Vec<&Mac> = peers.values().collect();
        for (mac, ip) in entries.fdb.iter().filter(|(mac, _)| !macs.contains(mac)) {
            self.netlink.delete_tunnel_fdb(index, mac, *ip).await?;
            info!(peer = %ip, mac = %mac_text(mac), "tunnel FDB entry removed");
            diff.entries_removed += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::dataplane::fake::{FakeKernel, FakeSysctl};

    fn spec() -> VxlanSpec {
        VxlanSpec {
            local: "198.18.0.11".parse().unwrap(),
            mac: [0x0e, 1, 2, 3, 4, 5],
            mtu: 1450,
            port: 4789,
        }
    }

    fn peers(list: &[(&str, u8)]) -> BTreeMap<Ipv4Addr, Mac> {
        list.iter()
            .map(|(ip, m)| (ip.parse().unwrap(), [0x0e, 0, 0, 0, 0, *m]))
            .collect()
    }

    #[tokio::test]
    async fn the_tunnel_follows_its_peers_and_goes_when_no_pool_needs_it() {
        let kernel = Arc::new(FakeKernel::default());
        let dp = Dataplane::with(kernel.clone(), Arc::new(FakeSysctl::default()), 1500);
        let (s, two) = (spec(), peers(&[("198.18.1.12", 2), ("198.18.1.13", 3)]));
        let first = dp.converge_tunnel(Some((&s, &two))).await.unwrap();
        assert!(first.created && first.peers_put.len() == 2, "{first:?}");
        // Idempotent: a second pass changes nothing.
        kernel.clear_calls();
        let again = dp.converge_tunnel(Some((&s, &two))).await.unwrap();
        assert!(!again.changed(), "{again:?}");
        assert!(kernel.calls().is_empty(), "{:?}", kernel.calls());
        // A peer that leaves takes both its entries with it.
        let one = peers(&[("198.18.1.12", 2)]);
        let left = dp.converge_tunnel(Some((&s, &one))).await.unwrap();
        assert_eq!(left.entries_removed, 2, "{left:?}");
        let gone = dp.converge_tunnel(None).await.unwrap();
        assert!(gone.removed);
        assert!(!kernel.link_names().contains(&VXLAN_DEVICE.to_string()));
    }

    #[tokio::test]
    async fn a_foreign_link_of_that_name_is_never_touched() {
        let kernel = Arc::new(FakeKernel::default());
        kernel.add_foreign_link(VXLAN_DEVICE, false, None);
        let dp = Dataplane::with(kernel.clone(), Arc::new(FakeSysctl::default()), 1500);
        let s = spec();
        let err = dp.converge_tunnel(Some((&s, &peers(&[])))).await;
        assert!(matches!(err, Err(Error::Foreign(_))), "{err:?}");
        assert!(!dp.converge_tunnel(None).await.unwrap().removed);
        assert!(kernel.link_names().contains(&VXLAN_DEVICE.to_string()));
        assert!(kernel.calls().is_empty(), "{:?}", kernel.calls());
    }
}
