//! The little tabby asks of the Docker Engine API (through bollard, with
//! the API version negotiated: the daemon may be older than the client).

use std::collections::HashMap;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptionsBuilder;
use bollard::{API_DEFAULT_VERSION, Docker};
use tokio::sync::OnceCell;

mod containers;

pub use containers::Containers;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("docker at {host}: {source}")]
    Api {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("docker at {host}: {message}")]
    Local { host: String, message: String },
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
        Error::Api {
            host: self.host.clone(),
            source,
        }
    }

    fn local_err(&self, message: String) -> Error {
        Error::Local {
            host: self.host.clone(),
            message,
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

/// Label that marks the Docker networks tabby made from a network
/// definition, with the definition's name.
pub const NETWORK_LABEL: &str = "tabby.network";

/// A Docker network made by tabby on this host.
#[derive(Debug, Clone)]
pub struct ManagedNetwork {
    pub id: String,
    pub name: String,
    /// The definition it was made for (its label).
    pub def: String,
}

/// What to create: one tabby network with one subnet, or two (dual-stack).
pub struct NetworkSpec<'a> {
    pub name: &'a str,
    pub driver: &'a str,
    pub subnet: &'a str,
    pub subnet6: Option<&'a str>,
    pub options: HashMap<String, String>,
}

impl DockerEngine {
    /// Docker networks carrying tabby's label.
    pub async fn managed_networks(&self) -> Result<Vec<ManagedNetwork>, Error> {
        let filters = HashMap::from([("label", vec![NETWORK_LABEL])]);
        let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
        let networks = self
            .client()
            .await?
            .list_networks(Some(options))
            .await
            .map_err(|e| self.err(e))?;
        Ok(networks
            .into_iter()
            .filter_map(|n| {
                let def = n.labels.as_ref()?.get(NETWORK_LABEL)?.clone();
                Some(ManagedNetwork {
                    id: n.id?,
                    name: n.name?,
                    def,
                })
            })
            .collect())
    }

    pub async fn create_network(&self, spec: NetworkSpec<'_>) -> Result<String, Error> {
        let request = NetworkCreateRequest {
            name: spec.name.to_string(),
            driver: Some(spec.driver.to_string()),
            ipam: Some(Ipam {
                driver: Some(spec.driver.to_string()),
                config: Some(
                    std::iter::once(spec.subnet)
                        .chain(spec.subnet6)
                        .map(|subnet| IpamConfig {
                            subnet: Some(subnet.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                options: None,
            }),
            enable_ipv6: Some(spec.subnet6.is_some()),
            options: Some(spec.options),
            labels: Some(HashMap::from([(
                NETWORK_LABEL.to_string(),
                spec.name.to_string(),
            )])),
            ..Default::default()
        };
        let created = self
            .client()
            .await?
            .create_network(request)
            .await
            .map_err(|e| self.err(e))?;
        Ok(created.id)
    }

    /// Number of containers attached to a network.
    pub async fn network_containers(&self, id: &str) -> Result<usize, Error> {
        let network = self
            .client()
            .await?
            .inspect_network(id, None)
            .await
            .map_err(|e| self.err(e))?;
        Ok(network.containers.map(|c| c.len()).unwrap_or(0))
    }

    pub async fn remove_network(&self, id: &str) -> Result<(), Error> {
        self.client()
            .await?
            .remove_network(id)
            .await
            .map_err(|e| self.err(e))
    }
}

impl DockerEngine {
    /// A container as Docker describes it, or None if there is no such one.
    async fn inspect_container(
        &self,
        name_or_id: &str,
    ) -> Result<Option<bollard::models::ContainerInspectResponse>, Error> {
        match self
            .client()
            .await?
            .inspect_container(name_or_id, None)
            .await
        {
            Ok(c) => Ok(Some(c)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// A container's name and its IPv4 addresses on every network, or
    /// None if this host's Docker has no such container.
    pub async fn container_addresses(
        &self,
        name_or_id: &str,
    ) -> Result<Option<(String, Vec<std::net::Ipv4Addr>)>, Error> {
        let Some(inspected) = self.inspect_container(name_or_id).await? else {
            return Ok(None);
        };
        let name = inspected
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let ips = inspected
            .network_settings
            .and_then(|s| s.networks)
            .unwrap_or_default()
            .into_values()
            .filter_map(|n| n.ip_address?.parse().ok())
            .collect();
        Ok(Some((name, ips)))
    }
}

/// Labels tabby reads from containers start with this.
pub const LABEL_PREFIX: &str = "tabby.";

impl DockerEngine {
    /// A container's `tabby.*` labels (empty if it is gone).
    pub async fn container_labels(
        &self,
        name_or_id: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, Error> {
        let Some(inspected) = self.inspect_container(name_or_id).await? else {
            return Ok(Default::default());
        };
        Ok(inspected
            .config
            .and_then(|c| c.labels)
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k.starts_with(LABEL_PREFIX))
            .collect())
    }
}

impl DockerEngine {
    /// The endpoints Docker has on a network (endpoint ID -> IPv4
    /// address), or None if this host's Docker has no such network.
    pub async fn network_endpoints(
        &self,
        network_id: &str,
    ) -> Result<Option<HashMap<String, Vec<std::net::IpAddr>>>, Error> {
        let network = match self.client().await?.inspect_network(network_id, None).await {
            Ok(n) => n,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        Ok(Some(
            network
                .containers
                .unwrap_or_default()
                .into_values()
                .filter_map(|c| {
                    let ips = [c.ipv4_address, c.ipv6_address]
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.split('/').next()?.parse().ok())
                        .collect();
                    Some((c.endpoint_id?, ips))
                })
                .collect(),
        ))
    }
}

/// What the driver asks Docker, behind a trait so that unit tests answer
/// with a fake.
#[async_trait::async_trait]
pub trait Engine: Send + Sync {
    /// The name of the container attached by an endpoint, once Docker has
    /// recorded the attachment.
    async fn container_for_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<Option<String>, Error>;
    /// A container's `tabby.*` labels (empty if it is gone).
    async fn container_labels(
        &self,
        name_or_id: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, Error>;
    /// Endpoint ID -> IPv4 address of a network's endpoints, or None if
    /// Docker has no such network.
    async fn network_endpoints(
        &self,
        network_id: &str,
    ) -> Result<Option<HashMap<String, Vec<std::net::IpAddr>>>, Error>;

    /// A network's name, once Docker has recorded the network.
    async fn network_name(&self, network_id: &str) -> Result<Option<String>, Error>;
}

#[async_trait::async_trait]
impl Engine for DockerEngine {
    async fn container_for_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<Option<String>, Error> {
        DockerEngine::container_for_endpoint(self, network_id, endpoint_id).await
    }

    async fn container_labels(
        &self,
        name_or_id: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, Error> {
        DockerEngine::container_labels(self, name_or_id).await
    }

    async fn network_endpoints(
        &self,
        network_id: &str,
    ) -> Result<Option<HashMap<String, Vec<std::net::IpAddr>>>, Error> {
        DockerEngine::network_endpoints(self, network_id).await
    }

    async fn network_name(&self, network_id: &str) -> Result<Option<String>, Error> {
        let client = self.client().await?;
        match client
            .inspect_network(
                network_id,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(network) => Ok(network.name),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }
}
