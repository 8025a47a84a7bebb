//! Updates that need not hold up Docker: they run after the plugin call
//! has answered. Container names come from the Engine API, which cannot be
//! asked while dockerd waits on our answer (it would deadlock); endpoint
//! state and handle details are bookkeeping that the call's outcome does
//! not depend on.

use std::time::Duration;

use tracing::{debug, warn};

use super::Driver;
use crate::ipam::Ipam;
use crate::model::{Endpoint, Handle};
use crate::store::{Expect, Store};

const NAME_ATTEMPTS: u32 = 20;
const SWAP_ATTEMPTS: usize = 10;

/// How an endpoint update ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Updated {
    Applied,
    /// The endpoint is no longer recorded.
    Gone,
    /// Every attempt lost to a concurrent write.
    Contended,
}

/// Applies `change` to the stored endpoint unless it is gone. Compare-and-
/// swap, so a late update never resurrects a deleted endpoint; a failed
/// swap is tried again, and the last error is returned if none applied.
pub(super) async fn update_endpoint(
    store: &Store,
    host: &str,
    id: &str,
    change: impl Fn(&mut Endpoint),
) -> Result<Updated, crate::store::Error> {
    let mut failed = None;
    for _ in 0..SWAP_ATTEMPTS {
        let Some(current) = store.endpoint_versioned(host, id).await? else {
            return Ok(Updated::Gone);
        };
        let mut endpoint = current.value;
        change(&mut endpoint);
        match store
            .swap_endpoint(&endpoint, Expect::Revision(current.revision))
            .await
        {
            Ok(true) => return Ok(Updated::Applied),
            Ok(false) => {}
            Err(err) => failed = Some(err),
        }
    }
    failed.map_or(Ok(Updated::Contended), Err)
}

/// Adds details to the handles of an endpoint's addresses (both families),
/// where the endpoint still holds them.
async fn update_handle(ipam: &Ipam, endpoint: &Endpoint, change: impl Fn(&mut Handle)) {
    let addresses = std::iter::once(endpoint.ip.into()).chain(endpoint.ip6.map(Into::into));
    for ip in addresses {
        let _ = ipam
            .update_handle(ip, |h| {
                let mut h = h.clone();
                if h.endpoint.is_none() || h.endpoint.as_deref() == Some(endpoint.id.as_str()) {
                    change(&mut h);
                }
                h
            })
            .await;
    }
}

impl Driver {
    /// Records network and endpoint in the address's handle, then learns
    /// the container's name and records it in handle and endpoint.
    pub(super) fn complete_records(&self, endpoint: &Endpoint) {
        let store = self.store.clone();
        let ipam = self.ipam.clone();
        let docker = self.docker.clone();
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            update_handle(&ipam, &endpoint, |h| {
                h.network = Some(endpoint.network_id.clone());
                h.endpoint = Some(endpoint.id.clone());
            })
            .await;
            let Some(docker) = docker else {
                return;
            };
            for attempt in 1..=NAME_ATTEMPTS {
                tokio::time::sleep(
                    Duration::from_millis(100 * attempt as u64).min(Duration::from_secs(1)),
                )
                .await;
                // Short-lived containers are often gone before Docker is asked.
                if !matches!(
                    store.endpoint(&endpoint.host, &endpoint.id).await,
                    Ok(Some(_))
                ) {
                    return;
                }
                let name = match docker
                    .container_for_endpoint(&endpoint.network_id, &endpoint.id)
                    .await
                {
                    Ok(Some(name)) => name.trim_start_matches('/').to_string(),
                    Ok(None) => continue,
                    Err(err) => {
                        debug!(error = %err, "cannot learn container name");
                        return;
                    }
                };
                if let Err(err) = crate::validate::container_name(&name) {
                    warn!(error = %err, "container name not recorded");
                    return;
                }
                let labels = docker.container_labels(&name).await.unwrap_or_else(|err| {
                    debug!(error = %err, "cannot read container labels");
                    Default::default()
                });
                let _ = update_endpoint(&store, &endpoint.host, &endpoint.id, |e| {
                    e.container = Some(name.clone());
                    e.labels = labels.clone();
                })
                .await;
                update_handle(&ipam, &endpoint, |h| h.container = Some(name.clone())).await;
                debug!(endpoint = %endpoint.id, container = %name, "learned container name");
                return;
            }
        });
    }
}
