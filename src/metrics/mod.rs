//! The agent's Prometheus metrics (felix's set, shaped for tabby) and the
//! health state `/livez` and `/readyz` report. One process-wide registry:
//! the places that measure are spread over the crate, and a metric is
//! cheap to touch whether or not anyone scrapes. Labels stay bounded:
//! call names, results, operations, kinds, pools and states, never
//! endpoint or container IDs.

pub mod cluster;
pub mod recent;
pub mod serve;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub call: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

type Timings<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    pub registry: Registry,
    pub plugin_calls: Timings<CallLabels>,
    pub firewall_apply: Histogram,
    pub firewall_errors: Counter,
    pub firewall_objects: Family<KindLabels, Gauge>,
    pub route_sync: Histogram,
    pub routes: Gauge,
    pub etcd_requests: Timings<OpLabels>,
    pub etcd_errors: Family<OpLabels, Counter>,
    pub watch_restarts: Counter,
    pub resyncs: Counter,
    pub local_endpoints: Gauge,
    pub cluster_endpoints: Gauge,
    pub nodes_up: Gauge,
    pub nodes_down: Gauge,
    pub pool_allocated: Family<PoolLabels, Gauge>,
    pub pool_free: Family<PoolLabels, Gauge>,
    pub repairs: Family<KindLabels, Counter>,
    pub bgp_sessions: Family<StateLabels, Gauge>,
    pub galera_members: Family<StateLabels, Gauge>,
    pub mysql_clusters: Family<StateLabels, Gauge>,
    pub mysql_members: Family<StateLabels, Gauge>,
    pub health: Health,
}

/// What the health endpoints read.
#[derive(Default)]
pub struct Health {
    /// Unix seconds the agent started.
    pub started: AtomicI64,
    /// The firewall backend in use.
    pub backend: OnceLock<&'static str>,
    pub resynced: AtomicBool,
    /// Unix seconds of the last firewall apply that succeeded; 0: none.
    pub firewall_applied: AtomicI64,
    /// Unix seconds of the liveness loop's last tick.
    pub alive_tick: AtomicI64,
    /// Unix seconds of the last route sync that succeeded; 0: none.
    pub routes_synced: AtomicI64,
    /// The last warnings and errors logged, with their Unix time.
    pub recent: recent::Recent,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

pub fn get() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Health {
    pub fn agent_started(&self, backend: &'static str) {
        self.started.store(now(), Ordering::Relaxed);
        // Alive from the start; the liveness loop takes over from here.
        self.alive_tick.store(now(), Ordering::Relaxed);
        let _ = self.backend.set(backend);
    }

    pub fn firewall_applied(&self) {
        self.firewall_applied.store(now(), Ordering::Relaxed);
    }

    pub fn routes_synced(&self) {
        self.routes_synced.store(now(), Ordering::Relaxed);
    }

    pub fn tick(&self) {
        self.alive_tick.store(now(), Ordering::Relaxed);
    }
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::with_prefix("tabby"),
            plugin_calls: Family::new_with_constructor(seconds),
            firewall_apply: seconds(),
            firewall_errors: Counter::default(),
            firewall_objects: Family::default(),
            route_sync: seconds(),
            routes: Gauge::default(),
            etcd_requests: Family::new_with_constructor(seconds),
            etcd_errors: Family::default(),
            watch_restarts: Counter::default(),
            resyncs: Counter::default(),
            local_endpoints: Gauge::default(),
            cluster_endpoints: Gauge::default(),
            nodes_up: Gauge::default(),
            nodes_down: Gauge::default(),
            pool_allocated: Family::default(),
            pool_free: Family::default(),
            repairs: Family::default(),
            bgp_sessions: Family::default(),
            galera_members: Family::default(),
            mysql_clusters: Family::default(),
            mysql_members: Family::default(),
            health: Health::default(),
        };
        m.register()
    }

    fn register(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "plugin_call_duration_seconds",
            "Docker plugin calls by call and result",
            self.plugin_calls.clone(),
        );
        r.register(
            "firewall_apply_duration_seconds",
            "Firewall programming passes",
            self.firewall_apply.clone(),
        );
        r.register(
            "firewall_apply_errors",
            "Firewall programming passes that failed",
            self.firewall_errors.clone(),
        );
        r.register(
            "firewall_programmed",
            "What the firewall holds: chains, rules, set members, DNAT entries",
            self.firewall_objects.clone(),
        );
        r.register(
            "route_sync_duration_seconds",
            "Route resync passes",
            self.route_sync.clone(),
        );
        r.register(
            "routes",
            "Routes tabby holds in the kernel",
            self.routes.clone(),
        );
        r.register(
            "etcd_request_duration_seconds",
            "etcd requests by operation",
            self.etcd_requests.clone(),
        );
        r.register(
            "etcd_request_errors",
            "etcd requests that failed, by operation",
            self.etcd_errors.clone(),
        );
        r.register(
            "etcd_watch_restarts",
            "Datastore watches started over after an error",
            self.watch_restarts.clone(),
        );
        r.register(
            "resyncs",
            "Full resyncs of routes and firewall",
            self.resyncs.clone(),
        );
        r.register(
            "local_endpoints",
            "Endpoints on this host",
            self.local_endpoints.clone(),
        );
        r.register(
            "cluster_endpoints",
            "Endpoints on every host",
            self.cluster_endpoints.clone(),
        );
        r.register(
            "nodes_up",
            "Hosts whose agent is alive",
            self.nodes_up.clone(),
        );
        r.register(
            "nodes_down",
            "Hosts whose agent is not alive",
            self.nodes_down.clone(),
        );
        r.register(
            "pool_addresses_allocated",
            "Addresses allocated, by pool",
            self.pool_allocated.clone(),
        );
        r.register(
            "pool_addresses_free",
            "Addresses free, by pool",
            self.pool_free.clone(),
        );
        r.register("repairs", "Repairs done, by kind", self.repairs.clone());
        r.register(
            "bgp_sessions",
            "BGP sessions by state",
            self.bgp_sessions.clone(),
        );
        r.register(
            "galera_members",
            "Galera members on this host by what its agent last did",
            self.galera_members.clone(),
        );
        r.register(
            "mysql_clusters",
            "Replication clusters whose master is on this host, by state",
            self.mysql_clusters.clone(),
        );
        r.register(
            "mysql_cluster_members",
            "Members of those clusters, by their cluster's state",
            self.mysql_members.clone(),
        );
        self
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String");
        text
    }

    /// Times a plugin call.
    pub fn plugin_call(&self, call: &str, ok: bool, started: Instant) {
        let result = if ok { "ok" } else { "error" };
        self.plugin_calls
            .get_or_create(&CallLabels {
                call: call.trim_start_matches('/').to_string(),
                result,
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Times an etcd request; counts its failure.
    pub fn etcd(&self, op: &str, ok: bool, started: Instant) {
        let labels = OpLabels { op: op.to_string() };
        self.etcd_requests
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        if !ok {
            self.etcd_errors.get_or_create(&labels).inc();
        }
    }

    pub fn programmed(&self, p: &crate::policy::model::Programmed) {
        let counts = [
            ("chains", p.chains),
            ("rules", p.rules),
            ("set_members", p.set_members),
            ("dnat_entries", p.dnat_entries),
        ];
        for (kind, count) in counts {
            self.firewall_objects
                .get_or_create(&KindLabels { kind })
                .set(count as i64);
        }
    }

    pub fn repaired(&self, kind: &'static str, count: usize) {
        if count > 0 {
            self.repairs
                .get_or_create(&KindLabels { kind })
                .inc_by(count as u64);
        }
    }

    /// Sessions by BGP state (the first word of BIRD's info column).
    pub fn bgp<'a>(&self, infos: impl Iterator<Item = &'a str>) {
        const STATES: [&str; 7] = [
            "Idle",
            "Connect",
            "Active",
            "OpenSent",
            "OpenConfirm",
            "Established",
            "Close",
        ];
        self.bgp_sessions.clear();
        for state in STATES {
            self.bgp_sessions
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .set(0);
        }
        for info in infos {
            let word = info.split_whitespace().next().unwrap_or("");
            let state = STATES.iter().find(|s| **s == word).map_or("other", |s| s);
            self.bgp_sessions
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_name_and_result_in_text_format() {
        let m = Metrics::new();
        let started = Instant::now();
        for _ in 0..3 {
            m.plugin_call("/NetworkDriver.Join", true, started);
        }
        m.plugin_call("/NetworkDriver.Join", false, started);
        let text = m.encode();
        assert!(
            text.contains(r#"tabby_plugin_call_duration_seconds_count{call="NetworkDriver.Join",result="ok"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"result="error"} 1"#), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
