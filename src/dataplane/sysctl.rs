//! Kernel settings under /proc/sys/net, read before written so a resync
//! that finds them right writes nothing.

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, statvfs};
use tracing::info;

use super::Error;

fn set(path: PathBuf, value: &str) -> Result<(), Error> {
    if let Ok(current) = std::fs::read_to_string(&path) {
        if current.trim() == value {
            return Ok(());
        }
    }
    std::fs::write(&path, value).map_err(|source| Error::Sysctl { path, source })
}

/// Lets the host answer a container's ARP for the 169.254.1.1 gateway, at
/// once (the kernel's default proxy delay is up to 0.8 s), and route what
/// arrives on the interface.
pub fn configure_endpoint_interface(ifname: &str, ipv6: bool) -> Result<(), Error> {
    let conf = PathBuf::from("/proc/sys/net/ipv4/conf").join(ifname);
    set(conf.join("proxy_arp"), "1")?;
    set(conf.join("forwarding"), "1")?;
    // A port exposed on 127.0.0.1 is DNATed in OUTPUT to the container:
    // the packet then leaves this veth with a loopback source, and its
    // replies come back to a loopback address, both dropped as martians
    // unless the veth allows them. Only tabby's veths get it (never `all`
    // or the host's uplinks); the firewall drops any new connection to
    // 127.0.0.0/8 from a veth.
    set(conf.join("route_localnet"), "1")?;
    set(
        PathBuf::from("/proc/sys/net/ipv4/neigh")
            .join(ifname)
            .join("proxy_delay"),
        "0",
    )?;
    if ipv6 {
        return configure_endpoint_ipv6(ifname);
    }
    // The host end carries no addresses; IPv6 autoconf on it is only noise.
    let v6 = PathBuf::from("/proc/sys/net/ipv6/conf")
        .join(ifname)
        .join("disable_ipv6");
    if v6.exists() {
        set(v6, "1")?;
    }
    Ok(())
}

/// What a dual-stack endpoint's host veth needs on top: IPv6 on, so it
/// has its link-local address (the containers' gateway, from its fixed
/// MAC) at once, with no duplicate address detection to wait out; IPv6
/// forwarding on it and host-wide. `all.forwarding` makes the host
/// ignore router advertisements where `accept_ra` is 1: set only once a
/// dual-stack endpoint exists, and logged.
fn configure_endpoint_ipv6(ifname: &str) -> Result<(), Error> {
    let conf = PathBuf::from("/proc/sys/net/ipv6/conf");
    let all = conf.join("all").join("forwarding");
    if std::fs::read_to_string(&all).is_ok_and(|v| v.trim() != "1") {
        info!("turning IPv6 forwarding on (net.ipv6.conf.all.forwarding) for dual-stack endpoints");
    }
    set(all, "1")?;
    let conf = conf.join(ifname);
    set(conf.join("accept_dad"), "0")?;
    set(conf.join("forwarding"), "1")?;
    set(conf.join("disable_ipv6"), "0")
}

pub fn enable_ip_forwarding() -> Result<(), Error> {
    set(PathBuf::from("/proc/sys/net/ipv4/ip_forward"), "1")
}

/// Makes /proc/sys writable where it is not: in a Docker managed plugin
/// runc mounts it read-only (Docker's default spec, whatever the
/// capabilities) and refuses bind mounts inside /proc, so no plugin config
/// can help. The plugin has CAP_SYS_ADMIN and a mount namespace of its own:
/// remounting its /proc/sys changes nothing outside it, and the settings
/// under it still belong to the host's network namespace (network type
/// host). On a host, /proc/sys is writable and nothing happens.
pub fn ensure_writable() -> Result<(), Error> {
    let path = Path::new("/proc/sys");
    let read_only = statvfs(path).is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY));
    if !read_only {
        return Ok(());
    }
    let flags = MsFlags::MS_REMOUNT
        | MsFlags::MS_BIND
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>).map_err(|e| Error::Sysctl {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    info!("remounted /proc/sys read-write");
    Ok(())
}
