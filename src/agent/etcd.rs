//! Reaching etcd at start: waited out while it is down, and which of its
//! errors mean "down" rather than "refused".

use anyhow::Result;
use tracing::warn;

use super::AgentConfig;
use super::supervise::Backoff;
use crate::store::Store;

/// Connecting is lazy without authentication; with it the client logs in
/// at once, so etcd being down is waited out here (without a socket yet).
pub(super) async fn connect(config: &AgentConfig) -> Result<Store> {
    let mut backoff = Backoff::default();
    loop {
        match Store::connect(&config.etcd, &config.etcd_prefix).await {
            Ok(store) => return Ok(store),
            Err(err) if etcd_unavailable(&err) => {
                let delay = backoff.next_delay();
                warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "waiting for etcd");
                tokio::time::sleep(delay).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Whether a datastore error means "etcd cannot be reached (yet)", as
/// opposed to an answer that retrying will not change.
pub(super) fn etcd_unavailable(err: &crate::store::Error) -> bool {
    use crate::store::Error as E;
    match err {
        E::Timeout(_) | E::Watch(_) => true,
        E::Connect { cause: source, .. } | E::Etcd(source) => match source {
            etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
            etcd_client::Error::GRpcStatus(status) => matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
            ),
            _ => false,
        },
        _ => false,
    }
}
