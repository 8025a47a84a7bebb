//! `tabby agent`: the per-host daemon. It converges this host's kernel to
//! the datastore (at start, then on every change), keeps its node
//! registered, makes the Docker networks of network definitions, and serves
//! Docker's plugin protocol on a Unix socket until SIGTERM/SIGINT.

mod mysql;
mod networks;
mod reconcile;

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::Utc;
use ipnet::Ipv4Net;
use tokio::net::UnixListener;
use tracing::info;

use tokio::sync::Notify;

use crate::dataplane::Dataplane;
use crate::docker::DockerEngine;
use crate::driver::{Driver, DriverConfig};
use crate::model::Node;
use crate::policy::iptables::IptablesFirewall;
use crate::store::Store;
use networks::NetworkSync;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub etcd: crate::store::EtcdOptions,
    pub etcd_prefix: String,
    pub hostname: String,
    pub ip: Option<Ipv4Addr>,
    pub socket: PathBuf,
    pub mtu: u32,
    pub default_pool: Option<Ipv4Net>,
    pub block_prefix: u8,
    /// Seconds after which a silent agent's node counts as down.
    pub node_ttl: i64,
    /// Docker Engine API socket, for container names and network definitions.
    pub docker_host: String,
    /// The driver name dockerd knows this plugin by.
    pub driver_name: String,
    /// For label-driven MySQL bootstrap; None turns it off.
    pub mysql_credentials: Option<crate::mysql::Credentials>,
    /// Seconds between leak checks with repair (0: never).
    pub ipam_check_interval: u64,
    /// Records younger than this (seconds) are left to calls in flight.
    pub ipam_check_grace: i64,
}

pub async fn run(config: AgentConfig) -> Result<()> {
    let store = Store::connect(&config.etcd, &config.etcd_prefix).await?;
    let dataplane = Dataplane::new(config.mtu)?;
    let ip = match config.ip {
        Some(ip) => ip,
        None => dataplane
            .netlink()
            .host_address()
            .await?
            .context("cannot find this host's address: pass --ip")?,
    };
    let docker = Arc::new(DockerEngine::new(&config.docker_host));
    let driver = Arc::new(Driver::new(
        store.clone(),
        dataplane,
        Arc::new(IptablesFirewall::default()),
        DriverConfig {
            host: config.hostname.clone(),
            default_pool: config.default_pool,
            block_prefix: config.block_prefix,
        },
        Some(docker.clone()),
    ));
    driver.prepare_host().await?;
    driver.resync().await?;

    let node = Node {
        hostname: config.hostname.clone(),
        ip,
        started: Utc::now(),
        version: crate::VERSION.to_string(),
    };
    let lease = store.register_node(&node, config.node_ttl).await?;

    let networks_changed = Arc::new(Notify::new());
    let mysql_changed = Arc::new(Notify::new());
    let labels = mysql::LabelBootstrap {
        store: store.clone(),
        host: config.hostname.clone(),
        credentials: config.mysql_credentials.clone(),
    };
    let sync = NetworkSync {
        store: store.clone(),
        docker,
        host: config.hostname.clone(),
        driver_name: config.driver_name.clone(),
    };
    let background = [
        tokio::spawn(sync.run(networks_changed.clone())),
        tokio::spawn(labels.run(mysql_changed.clone())),
        tokio::spawn(check_periodically(
            driver.clone(),
            config.ipam_check_interval,
            config.ipam_check_grace,
        )),
        tokio::spawn(reconcile::run(
            driver.clone(),
            store.clone(),
            reconcile::Listeners {
                networks: networks_changed,
                mysql: mysql_changed,
            },
        )),
    ];

    let listener = bind(&config.socket)?;
    info!(socket = %config.socket.display(), host = %config.hostname, %ip, "agent ready");
    let served = axum::serve(listener, crate::api::router(driver))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    let _ = std::fs::remove_file(&config.socket);
    for task in background {
        task.abort();
    }
    lease.release().await;
    info!("agent stopped");
    served.context("plugin server failed")
}

/// Repairs leaks on a timer: Docker does not replay or clean up a legacy
/// plugin's calls after crashes and restarts, so the agent does.
async fn check_periodically(driver: Arc<Driver>, interval: u64, grace: i64) {
    if interval == 0 {
        return;
    }
    let grace = chrono::Duration::seconds(grace);
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(interval));
    loop {
        ticks.tick().await;
        match driver.check(grace, true).await {
            Ok(report) => {
                for line in &report.repaired {
                    info!("ipam check repaired: {line}");
                }
                for line in &report.unrepaired {
                    tracing::warn!("ipam check could not repair: {line}");
                }
            }
            Err(err) => tracing::warn!(error = %err, "ipam check failed"),
        }
    }
}

/// Binds the plugin socket: parent made if missing, a stale socket of a
/// dead agent replaced, mode 0600 (dockerd runs as root).
fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => info!(socket = %path.display(), "removed stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
}
