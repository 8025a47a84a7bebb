//! Work the agent does on a timer rather than on datastore changes: what
//! changes outside etcd's view (a crashed dockerd, a chain flushed or a
//! route deleted by hand, a dockerd restart that rewrote FORWARD) is only
//! found by looking.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::driver::Driver;

/// Repairs leaks on a timer: Docker does not replay or clean up a legacy
/// plugin's calls after crashes and restarts, so the agent does.
pub async fn check(driver: Arc<Driver>, interval: u64, grace: i64) -> anyhow::Result<()> {
    if interval == 0 {
        return futures::future::pending().await;
    }
    let grace = chrono::Duration::seconds(grace);
    let mut ticks = tokio::time::interval(Duration::from_secs(interval));
    loop {
        ticks.tick().await;
        match driver.check(grace, true).await {
            Ok(report) => {
                crate::metrics::get().repaired("ipam", report.repaired.len());
                for line in &report.repaired {
                    info!("ipam check repaired: {line}");
                }
                for line in &report.unrepaired {
                    warn!("ipam check could not repair: {line}");
                }
            }
            Err(err) => warn!(error = %err, "ipam check failed"),
        }
    }
}

/// A full resync of routes (read back from the kernel) and of the firewall
/// (read back and compared with what was applied) every `interval`.
pub async fn resync(driver: Arc<Driver>, interval: Duration) -> anyhow::Result<()> {
    if interval.is_zero() {
        return futures::future::pending().await;
    }
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match driver.resync().await {
            Ok(_) => {
                crate::metrics::get().resyncs.inc();
            }
            Err(err) => warn!(error = %err, "periodic resync failed"),
        }
        match driver.repair_drift().await {
            Ok(repaired) => {
                crate::metrics::get().repaired("firewall drift", repaired.len());
                for line in repaired {
                    info!("firewall drift repaired: {line}");
                }
            }
            Err(err) => warn!(error = %err, "firewall drift check failed"),
        }
    }
}
