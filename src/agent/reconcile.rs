//! The agent's control loop: a full resync, then a watch on the datastore;
//! each batch of relevant changes (debounced) triggers another convergence
//! pass. A watch error means changes may have been missed: start over with
//! a full resync. No polling.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::warn;

use super::supervise::Backoff;
use crate::driver::Driver;
use crate::store::Store;

/// Changes arriving within this window are applied in one pass.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// Whom a batch of changes concerns besides the convergence pass.
pub struct Listeners {
    pub networks: Arc<Notify>,
    pub mysql: Arc<Notify>,
    pub galera: Arc<Notify>,
    pub galera_labels: Arc<Notify>,
}

/// Retries back off (0.2 s up to 10 s) while passes keep failing, and
/// start over quickly once a watch was established.
pub async fn run(driver: Arc<Driver>, store: Store, listeners: Listeners) -> anyhow::Result<()> {
    let mut backoff = Backoff::default();
    loop {
        if let Err(err) = watch_and_converge(&driver, &store, &listeners, &mut backoff).await {
            crate::metrics::get().watch_restarts.inc();
            let delay = backoff.next_delay();
            let error = crate::error_chain::text(&err);
            warn!(%error, retry_in_ms = delay.as_millis() as u64, "resyncing after datastore error");
            tokio::time::sleep(delay).await;
        }
    }
}

async fn watch_and_converge(
    driver: &Driver,
    store: &Store,
    listeners: &Listeners,
    backoff: &mut Backoff,
) -> anyhow::Result<()> {
    let revision = store.revision().await?;
    driver.resync().await?;
    let metrics = crate::metrics::get();
    metrics.resyncs.inc();
    metrics
        .health
        .resynced
        .store(true, std::sync::atomic::Ordering::Relaxed);
    listeners.networks.notify_one();
    listeners.mysql.notify_one();
    listeners.galera.notify_one();
    listeners.galera_labels.notify_one();
    let mut changes = store.watch(revision + 1).await?;
    backoff.reset();
    let mut due: Option<Instant> = None;
    loop {
        let next = match due {
            Some(deadline) => match tokio::time::timeout_at(deadline, changes.next()).await {
                Ok(next) => next,
                Err(_) => {
                    due = None;
                    driver.resync().await?;
                    continue;
                }
            },
            None => changes.next().await,
        };
        let keys = match next {
            Some(batch) => batch?,
            None => anyhow::bail!("watch ended"),
        };
        if keys.iter().any(|k| store.keys().affects_routes(k)) {
            due.get_or_insert_with(|| Instant::now() + DEBOUNCE);
        }
        if keys.iter().any(|k| store.keys().affects_networks(k)) {
            listeners.networks.notify_one();
        }
        if keys.iter().any(|k| store.keys().affects_mysql(k)) {
            listeners.mysql.notify_one();
        }
        if keys.iter().any(|k| store.keys().affects_galera(k)) {
            listeners.galera.notify_one();
        }
        if keys
            .iter()
            .any(|k| store.keys().affects_mysql(k) || store.keys().affects_galera(k))
        {
            listeners.galera_labels.notify_one();
        }
    }
}
