//! `--metrics-listen ADDR`: `/metrics` (Prometheus text format), `/livez`
//! (the agent's loops still turn) and `/readyz` (etcd answers, the first
//! full resync is done, the firewall was applied), as felix serves them.
//! A failing check answers 503 with its reason.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::store::Store;

const ETCD_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Probes {
    store: Store,
    /// The liveness loop ticks at least this often.
    tick: Duration,
}

/// Serves in the background when an address is given; a listener that
/// cannot bind is logged, and the agent goes on without it.
pub fn spawn(addr: Option<SocketAddr>, store: Store, tick: Duration) {
    if let Some(addr) = addr {
        tokio::spawn(async move {
            if let Err(err) = serve(addr, store, tick).await {
                tracing::warn!(error = %err, "metrics listener stopped");
            }
        });
    }
}

pub async fn serve(addr: SocketAddr, store: Store, tick: Duration) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics listener on {addr}: {e}"))?;
    tracing::info!(%addr, "serving /metrics, /livez and /readyz");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(Probes { store, tick });
    axum::serve(listener, app).await?;
    Ok(())
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        super::get().encode(),
    )
        .into_response()
}

fn answer(problem: Option<String>) -> Response {
    match problem {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

async fn livez(State(probes): State<Probes>) -> Response {
    let last = super::get().health.alive_tick.load(Ordering::Relaxed);
    let age = chrono::Utc::now().timestamp() - last;
    let limit = 3 * probes.tick.as_secs().max(1) as i64;
    answer(
        (last == 0 || age > limit)
            .then(|| format!("the liveness loop last ran {age} s ago (limit {limit} s)")),
    )
}

/// The reason the agent is not ready, if it is not.
pub async fn not_ready(store: &Store) -> Option<String> {
    match tokio::time::timeout(ETCD_TIMEOUT, store.revision()).await {
        Err(_) => {
            return Some(format!(
                "etcd did not answer within {} s",
                ETCD_TIMEOUT.as_secs()
            ));
        }
        Ok(Err(e)) => return Some(format!("etcd: {e}")),
        Ok(Ok(_)) => {}
    }
    let health = &super::get().health;
    if !health.resynced.load(Ordering::Relaxed) {
        return Some("the first full resync is not done".into());
    }
    if health.firewall_applied.load(Ordering::Relaxed) == 0 {
        return Some("the firewall was not applied yet".into());
    }
    None
}

async fn readyz(State(probes): State<Probes>) -> Response {
    answer(not_ready(&probes.store).await)
}
