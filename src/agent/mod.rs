//! `tabby agent`: the per-host daemon. It converges this host's kernel to
//! the datastore (at start, then on every change), keeps its node
//! registered, makes the Docker networks of network definitions, and serves
//! Docker's plugin protocol on a Unix socket until SIGTERM/SIGINT.

mod bgp;
mod etcd;
mod galera;
mod galera_labels;
mod gate;
mod liveness;
mod mysql;
mod networks;
mod node;
mod periodic;
mod reconcile;
mod supervise;

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use tokio::net::UnixListener;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::dataplane::Dataplane;
use crate::docker::DockerEngine;
use crate::driver::{Driver, DriverConfig};
use crate::model::Node;
use crate::store::Store;
use gate::Readiness;
use networks::NetworkSync;
use supervise::{Backoff, supervise};

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub etcd: crate::store::EtcdOptions,
    pub etcd_prefix: String,
    pub hostname: String,
    pub ip: Option<Ipv4Addr>,
    /// This host's IPv6 address; None: the first global one beside `ip`.
    pub ip6: Option<std::net::Ipv6Addr>,
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
    /// Between full resyncs that repair drift of routes and firewall
    /// (zero: never).
    pub resync_interval: std::time::Duration,
    pub firewall: crate::policy::Backend,
    /// BGP routing through BIRD; None: direct routes.
    pub routing: Option<BgpOptions>,
    /// Where /metrics, /livez and /readyz are served; None: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// This host's subnet for `--vxlan cross-subnet`; None: the prefix
    /// its address is configured with.
    pub subnet: Option<Ipv4Net>,
}

#[derive(Debug, Clone)]
pub struct BgpOptions {
    pub dir: PathBuf,
    pub binary: PathBuf,
    pub hold_time: u16,
}

pub async fn run(config: AgentConfig) -> Result<()> {
    let store = etcd::connect(&config).await?;
    let tick = std::time::Duration::from_secs(config.node_ttl.max(1) as u64);
    crate::metrics::serve::spawn(config.metrics_listen, store.clone(), tick);
    crate::metrics::get()
        .health
        .agent_started(config.firewall.name());
    let dataplane = Dataplane::new(config.mtu)?;
    let addresses = node::addresses(&dataplane, &config).await?;
    let ip = addresses.ip;
    let docker = Arc::new(DockerEngine::new(&config.docker_host));
    let driver = Driver::new(
        store.clone(),
        dataplane,
        config.firewall.firewall(),
        DriverConfig {
            host: config.hostname.clone(),
            default_pool: config.default_pool,
            block_prefix: config.block_prefix,
        },
        Some(docker.clone() as Arc<dyn crate::docker::Engine>),
    );
    let driver = Arc::new(match &config.routing {
        Some(bgp) => driver.with_bgp(bgp::speaker(bgp).await?, bgp.hold_time),
        None => driver,
    });

    // The socket answers from the start: dockerd gets a clear error while
    // etcd is out of reach, instead of a missing plugin.
    let ready = Readiness::new(&config.etcd.endpoints);
    let listener = bind(&config.socket)?;
    let app = crate::api::router(driver.clone()).route_layer(axum::middleware::from_fn_with_state(
        ready.clone(),
        gate::gate,
    ));
    info!(socket = %config.socket.display(), host = %config.hostname, %ip, firewall = config.firewall.name(), "agent serving");
    let node = node::record(&config.hostname, addresses);
    let lease = Arc::new(tokio::sync::Mutex::new(None));
    let start = start(
        driver.clone(),
        store,
        docker,
        node,
        config.clone(),
        ready,
        lease.clone(),
    );
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal());
    let outcome = tokio::select! {
        served = server => served.context("plugin server failed"),
        failed = start => failed,
    };
    let _ = std::fs::remove_file(&config.socket);
    if let Some(lease) = lease.lock().await.take() {
        lease.release().await;
    }
    info!("agent stopped");
    outcome
}

/// Converges once (the node's registration, then a full resync), retrying
/// with backoff while etcd is out of reach, then opens the gate and starts
/// the supervised background tasks. Returns only with a fatal error (a
/// registration etcd refused); the tasks are aborted when it is dropped.
async fn start(
    driver: Arc<Driver>,
    store: Store,
    docker: Arc<DockerEngine>,
    node: Node,
    config: AgentConfig,
    ready: Readiness,
    lease: Arc<tokio::sync::Mutex<Option<crate::store::LeaseGuard>>>,
) -> Result<()> {
    let mut backoff = Backoff::default();
    loop {
        // Registration comes before any kernel change: a second agent
        // with a live agent's hostname is refused having touched nothing.
        let attempt = async {
            if lease.lock().await.is_none() {
                // Registration may wait out a crashed agent's lease: calls
                // meanwhile are told so, not that etcd is down.
                if let Ok(alive) = store.alive_hosts().await
                    && alive.contains(&node.hostname)
                {
                    ready.starting(format!(
                        "the liveness lease of host {} is held (by an agent that crashed, \
                         or another agent with this hostname): waiting up to {}s for it to expire",
                        node.hostname, config.node_ttl
                    ));
                }
                let registered = store.register_node(&node, config.node_ttl).await;
                ready.attempting();
                match registered {
                    Ok(guard) => *lease.lock().await = Some(guard),
                    Err(err) if etcd::etcd_unavailable(&err) => {
                        return Err(anyhow::Error::from(err));
                    }
                    Err(err) => {
                        return Ok(Err(
                            anyhow::Error::from(err).context("cannot register this node")
                        ));
                    }
                }
            }
            if let Err(err) = driver.prepare_host().await {
                return Ok(Err(
                    anyhow::Error::from(err).context("cannot prepare this host")
                ));
            }
            driver.resync().await.map_err(anyhow::Error::from)?;
            Ok(Ok(()))
        };
        match attempt.await {
            Ok(Ok(())) => break,
            Ok(Err(fatal)) => return Err(fatal),
            Err(err) => {
                let delay = backoff.next_delay();
                let reason = crate::error_chain::text(&err);
                warn!(error = %reason, retry_in_ms = delay.as_millis() as u64, "waiting for etcd");
                ready.waiting(reason);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = ready.retry_now.notified() => {}
                }
                ready.attempting();
            }
        }
    }
    ready.ready();
    info!(host = %config.hostname, "agent ready");
    let tasks = Tasks(background(driver, store, docker, node, config, lease));
    let _keep = tasks;
    futures::future::pending::<Result<()>>().await
}

/// Aborts the background tasks when the agent stops.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn background(
    driver: Arc<Driver>,
    store: Store,
    docker: Arc<DockerEngine>,
    node: Node,
    config: AgentConfig,
    lease: Arc<tokio::sync::Mutex<Option<crate::store::LeaseGuard>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let networks_changed = Arc::new(Notify::new());
    let mysql_changed = Arc::new(Notify::new());
    let galera_changed = Arc::new(Notify::new());
    let galera_labels_changed = Arc::new(Notify::new());
    let b = Backoff::default;
    let host = config.hostname.clone();
    let (s, n, m, g, gl) = (
        store.clone(),
        networks_changed.clone(),
        mysql_changed.clone(),
        galera_changed.clone(),
        galera_labels_changed.clone(),
    );
    let d = driver.clone();
    let watch = supervise("watch", b(), move || {
        let listeners = reconcile::Listeners {
            networks: n.clone(),
            mysql: m.clone(),
            galera: g.clone(),
            galera_labels: gl.clone(),
        };
        reconcile::run(d.clone(), s.clone(), listeners)
    });
    let (s, h, c) = (store.clone(), host.clone(), docker.clone());
    let galera = supervise("galera members", b(), move || {
        let agent = galera::GaleraAgent {
            store: s.clone(),
            host: h.clone(),
            containers: c.clone() as Arc<dyn crate::docker::Containers>,
        };
        agent.run(galera_changed.clone())
    });
    let (s, h) = (store.clone(), host.clone());
    let credentials = config.mysql_credentials.clone();
    let galera_labels = supervise("galera labels", b(), move || {
        let labels = galera_labels::GaleraLabels {
            store: s.clone(),
            host: h.clone(),
            credentials: credentials.clone(),
        };
        labels.run(galera_labels_changed.clone())
    });
    let (s, h, n) = (store.clone(), host.clone(), networks_changed);
    let driver_name = config.driver_name.clone();
    let networks = supervise("networks", b(), move || {
        let sync = NetworkSync {
            store: s.clone(),
            docker: docker.clone(),
            host: h.clone(),
            driver_name: driver_name.clone(),
        };
        sync.run(n.clone())
    });
    let (s, h, m) = (store.clone(), host, mysql_changed);
    let credentials = config.mysql_credentials.clone();
    let labels = supervise("mysql labels", b(), move || {
        let labels = mysql::LabelBootstrap {
            store: s.clone(),
            host: h.clone(),
            credentials: credentials.clone(),
        };
        labels.run(m.clone())
    });
    let d = driver.clone();
    let (interval, grace) = (config.ipam_check_interval, config.ipam_check_grace);
    let check = supervise("ipam check", b(), move || {
        periodic::check(d.clone(), interval, grace)
    });
    let driver_for_bgp = driver.clone();
    let resync_interval = config.resync_interval;
    let resync = supervise("resync", b(), move || {
        periodic::resync(driver.clone(), resync_interval)
    });
    let ttl = config.node_ttl;
    let liveness = supervise("liveness", b(), move || {
        let liveness = liveness::Liveness {
            store: store.clone(),
            node: node.clone(),
            ttl,
            guard: lease.clone(),
        };
        liveness.run()
    });
    let mut tasks = vec![
        watch,
        networks,
        labels,
        galera,
        galera_labels,
        check,
        resync,
        liveness,
    ];
    if config.routing.is_some() {
        let d = driver_for_bgp;
        tasks.push(supervise("bgp status", b(), move || bgp::report(d.clone())));
    }
    tasks
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
