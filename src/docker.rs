//! The little tabby asks of the Docker Engine API (through bollard, with
//! the API version negotiated: the daemon may be older than the client).

use bollard::{API_DEFAULT_VERSION, Docker};
use tokio::sync::OnceCell;

#[derive(Debug, thiserror::Error)]
#[error("docker at {host}: {source}")]
pub struct Error {
    host: String,
    #[source]
    source: bollard::errors::Error,
}

pub struct DockerEngine {
    host: String,
    client: OnceCell<Docker>,
}

impl DockerEngine {
    /// `host` is `unix:///path/to/docker.sock`. Nothing is contacted yet:
    /// the daemon may start after the agent.
    pub fn new(host: &str) -> Self {
        DockerEngine {
            host: host.to_string(),
            client: OnceCell::new(),
        }
    }

    fn err(&self, source: bollard::errors::Error) -> Error {
        Error {
            host: self.host.clone(),
            source,
        }
    }

    async fn client(&self) -> Result<&Docker, Error> {
        self.client
            .get_or_try_init(|| async {
                let docker = Docker::connect_with_unix(&self.host, 30, API_DEFAULT_VERSION)
                    .map_err(|e| self.err(e))?;
                docker.negotiate_version().await.map_err(|e| self.err(e))
            })
            .await
    }

    /// The name of the container attached to a network by an endpoint, once
    /// Docker has recorded the attachment (just after Join returns).
    pub async fn container_for_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<Option<String>, Error> {
        let network = self
            .client()
            .await?
            .inspect_network(network_id, None)
            .await
            .map_err(|e| self.err(e))?;
        Ok(network
            .containers
            .unwrap_or_default()
            .into_values()
            .find_map(|c| {
                (c.endpoint_id.as_deref() == Some(endpoint_id))
                    .then_some(c.name)
                    .flatten()
            }))
    }
}
