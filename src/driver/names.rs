//! Container names for handles and endpoint tables. Docker's plugin calls
//! never carry the container, so the agent asks the Engine API once the
//! attachment is recorded, in the background: calling dockerd while it
//! waits on our Join answer would deadlock.

use std::time::Duration;

use tracing::debug;

use super::Driver;
use crate::model::Endpoint;

const ATTEMPTS: usize = 40;
const PAUSE: Duration = Duration::from_millis(250);

impl Driver {
    pub(super) fn learn_container_name(&self, endpoint: &Endpoint) {
        let Some(docker) = self.docker.clone() else {
            return;
        };
        let store = self.store.clone();
        let ipam = self.ipam.clone();
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            for _ in 0..ATTEMPTS {
                tokio::time::sleep(PAUSE).await;
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
                // The endpoint may have gone meanwhile: only update what exists.
                if let Ok(Some(mut current)) = store.endpoint(&endpoint.host, &endpoint.id).await {
                    current.container = Some(name.clone());
                    let _ = store.put_endpoint(&current).await;
                }
                let _ = ipam
                    .update_handle(endpoint.ip, |h| {
                        let mut h = h.clone();
                        if h.endpoint.as_deref() == Some(endpoint.id.as_str()) {
                            h.container = Some(name.clone());
                        }
                        h
                    })
                    .await;
                debug!(endpoint = %endpoint.id, container = %name, "learned container name");
                return;
            }
        });
    }
}
