use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use ipnet::Ipv4Net;

use super::EtcdArgs;
use crate::agent::AgentConfig;
use crate::mysql::{Credentials, Password};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Name of this host in tabby (default: the system host name).
    #[arg(long, env = "TABBY_HOSTNAME")]
    hostname: Option<String>,
    /// This host's address (default: that of the default-route interface).
    #[arg(long, env = "TABBY_IP")]
    ip: Option<Ipv4Addr>,
    /// This host's IPv6 address (default: the first global IPv6 address
    /// of the interface that holds --ip; none there: no IPv6).
    #[arg(long, env = "TABBY_IP6")]
    ip6: Option<std::net::Ipv6Addr>,
    /// Plugin socket dockerd discovers the driver by.
    #[arg(
        long,
        env = "TABBY_SOCKET",
        default_value = "/run/docker/plugins/tabby.sock"
    )]
    socket: PathBuf,
    /// MTU of container interfaces.
    #[arg(long, env = "TABBY_MTU", default_value_t = 1500, value_parser = clap::value_parser!(u32).range(576..=65535))]
    mtu: u32,
    /// Pool for networks created without --subnet (default: the first pool added).
    #[arg(long, env = "TABBY_DEFAULT_POOL")]
    default_pool: Option<Ipv4Net>,
    /// Prefix length of the blocks of pools this agent creates.
    #[arg(long, env = "TABBY_BLOCK_SIZE", default_value_t = crate::ipam::DEFAULT_BLOCK_PREFIX,
          value_parser = clap::value_parser!(u8).range(16..=32))]
    block_size: u8,
    /// Seconds without a heartbeat after which this node shows as down.
    #[arg(long, env = "TABBY_NODE_TTL", default_value_t = 10, value_parser = clap::value_parser!(i64).range(2..=3600))]
    node_ttl: i64,
    /// Docker Engine API of this host (to learn container names).
    #[arg(
        long,
        env = "TABBY_DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    docker_host: String,
    /// The driver name dockerd knows this plugin by (tabby/tabby:latest
    /// for the managed plugin).
    #[arg(long, env = "TABBY_DRIVER_NAME", default_value = "tabby")]
    driver_name: String,
    /// Root password file for label-driven MySQL bootstrap (off without it).
    #[arg(long, env = "TABBY_MYSQL_ROOT_PASSWORD_FILE")]
    mysql_root_password_file: Option<PathBuf>,
    /// Replication account for label-driven bootstrap.
    #[arg(long, env = "TABBY_MYSQL_REPL_USER", default_value = "repl")]
    mysql_repl_user: String,
    /// Replication password file (default: derived from the root password).
    #[arg(long, env = "TABBY_MYSQL_REPL_PASSWORD_FILE")]
    mysql_repl_password_file: Option<PathBuf>,
    /// Seconds between checks that repair leaked addresses and stale
    /// endpoints, links and routes (`tabby ipam check --repair`); 0: never.
    #[arg(long, env = "TABBY_IPAM_CHECK_INTERVAL", default_value_t = 60)]
    ipam_check_interval: u64,
    /// Records younger than this many seconds are left to calls in flight.
    #[arg(long, env = "TABBY_IPAM_CHECK_GRACE", default_value_t = 60, value_parser = clap::value_parser!(i64).range(0..))]
    ipam_check_grace: i64,
    /// Seconds between full resyncs that repair drift of routes and the
    /// firewall (a chain flushed or a route deleted by hand); 0: never.
    #[arg(long, env = "TABBY_RESYNC_INTERVAL", default_value_t = 90)]
    resync_interval: u64,
    /// Firewall backend: nftables (one `inet tabby` table changed in
    /// place), iptables with ipsets, or auto (nftables where it works).
    #[arg(long, env = "TABBY_FIREWALL", value_enum, default_value_t = crate::policy::Backend::Auto)]
    firewall: crate::policy::Backend,
    /// Who installs routes towards other hosts: the agent itself (direct,
    /// one L2 segment) or BIRD, from BGP (bgp).
    #[arg(long, env = "TABBY_ROUTING", value_enum, default_value_t = crate::routing::Mode::Direct)]
    routing: crate::routing::Mode,
    /// Private directory of BIRD's configuration, control socket and log
    /// (bgp routing).
    #[arg(long, env = "TABBY_BIRD_DIR", default_value = "/var/run/tabby/bird")]
    bird_dir: PathBuf,
    /// The BIRD 2 binary (bgp routing).
    #[arg(long, env = "TABBY_BIRD", default_value = "bird")]
    bird: PathBuf,
    /// BGP hold time in seconds; also how long peers keep this host's
    /// routes while it restarts (graceful restart).
    #[arg(long, env = "TABBY_BGP_HOLD_TIME", default_value_t = 30, value_parser = clap::value_parser!(u16).range(3..=65535))]
    bgp_hold_time: u16,
    /// Serve Prometheus metrics, /livez and /readyz on this address
    /// (e.g. 127.0.0.1:9091); off by default, as felix.
    #[arg(long, env = "TABBY_METRICS_LISTEN", value_parser = listen_addr)]
    metrics_listen: Option<Listen>,
    /// This host's subnet, for pools with `--vxlan cross-subnet` (default:
    /// the prefix of --ip on this host).
    #[arg(long, env = "TABBY_NODE_SUBNET", value_parser = subnet)]
    subnet: Option<Subnet>,
    /// Log format (filter with RUST_LOG).
    #[arg(long, env = "TABBY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

pub async fn run(args: AgentArgs, etcd: EtcdArgs) -> Result<()> {
    let hostname = super::default_hostname(args.hostname)?;
    anyhow::ensure!(
        !hostname.is_empty() && !hostname.contains('/'),
        "invalid hostname {hostname:?}"
    );
    let mysql_credentials = match &args.mysql_root_password_file {
        Some(root) => {
            let repl = match &args.mysql_repl_password_file {
                Some(path) => Some(Password::from_file(path)?),
                None => None,
            };
            Some(Credentials::new(
                Password::from_file(root)?,
                &args.mysql_repl_user,
                repl,
            ))
        }
        None => None,
    };
    crate::agent::run(AgentConfig {
        etcd: etcd.options(),
        etcd_prefix: etcd.etcd_prefix,
        hostname,
        ip: args.ip,
        ip6: args.ip6,
        subnet: args.subnet.and_then(|s| s.0),
        socket: args.socket,
        mtu: args.mtu,
        default_pool: args.default_pool,
        block_prefix: args.block_size,
        node_ttl: args.node_ttl,
        docker_host: args.docker_host,
        driver_name: args.driver_name,
        mysql_credentials,
        ipam_check_interval: args.ipam_check_interval,
        ipam_check_grace: args.ipam_check_grace,
        resync_interval: std::time::Duration::from_secs(args.resync_interval),
        firewall: args.firewall.resolve(),
        metrics_listen: args.metrics_listen.and_then(|l| l.0),
        routing: match args.routing {
            crate::routing::Mode::Direct => None,
            crate::routing::Mode::Bgp => Some(crate::agent::BgpOptions {
                dir: args.bird_dir,
                binary: args.bird,
                hold_time: args.bgp_hold_time,
            }),
        },
    })
    .await
}

/// An address to listen on; empty means off (the managed plugin's way of
/// leaving a setting unset).
#[derive(Debug, Clone)]
pub struct Listen(Option<std::net::SocketAddr>);

/// A subnet, or empty for the default (the managed plugin passes every
/// setting, unset ones empty).
#[derive(Debug, Clone)]
pub struct Subnet(Option<ipnet::Ipv4Net>);

fn subnet(value: &str) -> Result<Subnet, String> {
    if value.is_empty() {
        return Ok(Subnet(None));
    }
    value
        .parse()
        .map(|n| Subnet(Some(n)))
        .map_err(|e| format!("{e} (want a CIDR, e.g. 198.18.0.0/24, or empty)"))
}

fn listen_addr(value: &str) -> Result<Listen, String> {
    if value.is_empty() {
        return Ok(Listen(None));
    }
    value
        .parse()
        .map(|a| Listen(Some(a)))
        .map_err(|e| format!("{e} (want HOST:PORT, e.g. 127.0.0.1:9091, or empty for off)"))
}
