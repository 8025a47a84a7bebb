//! A network made with plain `docker network create -d tabby` is named
//! after its ID in CreateNetwork, which does not carry the name. Once
//! Docker has recorded the network (after CreateNetwork answered: asking
//! during the call would deadlock dockerd), the agent learns its name,
//! records it, and gives the network a profile named after it, as Docker
//! users and calicoctl's profile commands expect.

use std::time::Duration;

use tracing::{info, warn};

use super::Driver;
use super::names::{Updated, update_endpoint};
use super::network::network_profile;

const ATTEMPTS: u32 = 20;

impl Driver {
    pub(super) fn learn_network_name(&self, network_id: &str) {
        let Some(docker) = self.docker.clone() else {
            return;
        };
        let driver = self.clone_handles();
        let id = network_id.to_string();
        tokio::spawn(async move {
            for attempt in 1..=ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                match docker.network_name(&id).await {
                    Ok(Some(name)) => {
                        if let Err(err) = driver.name_network(&id, &name).await {
                            warn!(network = %id, error = %err, "cannot record the network's name");
                        }
                        return;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        warn!(network = %id, error = %err, "cannot ask Docker for the network's name")
                    }
                }
            }
        });
    }
}

/// What naming needs of the driver, without the driver itself.
pub(super) struct Handles {
    pub store: crate::store::Store,
    pub host: String,
}

impl Handles {
    /// Records the name; moves the network's endpoints on this host from
    /// the ID-named profile to the name-named one, and removes the
    /// ID-named profile if it is still as tabby made it and unused.
    async fn name_network(&self, id: &str, name: &str) -> Result<(), super::Error> {
        let Some(mut network) = self.store.network(id).await? else {
            return Ok(());
        };
        let old = network_profile(&network);
        network.name = Some(name.to_string());
        let usable = crate::validate::profile_name("profile name", name).is_ok();
        if !usable {
            network.named_profile = false;
        }
        let new = network_profile(&network);
        if new != old {
            let profile = crate::policy::rules::default_profile(&new);
            let _ = self
                .store
                .swap_profile(&profile, crate::store::Expect::Absent)
                .await?;
        }
        self.store.put_network(&network).await?;
        if new == old {
            return Ok(());
        }
        for endpoint in self.store.host_endpoints(&self.host).await? {
            if endpoint.network_id != id || endpoint.profiles != [old.clone()] {
                continue;
            }
            let moved = update_endpoint(&self.store, &self.host, &endpoint.id, |e| {
                if e.profiles == [old.clone()] {
                    e.profiles = vec![new.clone()];
                }
            })
            .await?;
            if moved == Updated::Contended {
                warn!(endpoint = %endpoint.id, "could not move the endpoint to profile {new}");
            }
        }
        self.remove_if_untouched(&old).await?;
        info!(network = id, name, profile = %new, "network named; its profile follows the name");
        Ok(())
    }

    /// Moves a just-recorded endpoint to its network's profile if the
    /// network was named while the endpoint was being created. Naming
    /// moves the endpoints it lists after recording the name; this check
    /// reads the network after recording the endpoint: whichever comes
    /// last sees the other's write, so no endpoint keeps a profile that
    /// naming then removes (seen in CI: the container reached nobody).
    pub(super) async fn follow_renamed_profile(
        &self,
        network_id: &str,
        endpoint: &crate::model::Endpoint,
    ) -> Result<(), super::Error> {
        let Some(network) = self.store.network(network_id).await? else {
            return Ok(());
        };
        let now = network_profile(&network);
        let Some(old) = endpoint.profiles.first().filter(|p| **p != now) else {
            return Ok(());
        };
        let old = old.clone();
        update_endpoint(&self.store, &self.host, &endpoint.id, |e| {
            if e.profiles == [old.clone()] {
                e.profiles = vec![now.clone()];
            }
        })
        .await?;
        info!(endpoint = %endpoint.id, profile = %now, "endpoint follows its network's new name");
        self.remove_if_untouched(&old).await
    }

    async fn remove_if_untouched(&self, profile: &str) -> Result<(), super::Error> {
        let Some(current) = self.store.profile(profile).await? else {
            return Ok(());
        };
        if current.value != crate::policy::rules::default_profile(profile) {
            return Ok(());
        }
        let used = self
            .store
            .endpoints()
            .await?
            .iter()
            .any(|e| e.profiles.iter().any(|p| p == profile));
        if !used {
            self.store.delete_profile(profile).await?;
        }
        Ok(())
    }
}

impl Driver {
    pub(super) fn clone_handles(&self) -> Handles {
        Handles {
            store: self.store.clone(),
            host: self.host().to_string(),
        }
    }
}
