//! NetworkDriver calls.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use chrono::Utc;
use tracing::{info, warn};

use super::interfaces::StaticRoute;
use super::names::update_endpoint;
use super::{Driver, Error, docker_id, parse_address, parse_cidr};
use crate::dataplane::{GATEWAY, host_veth_name};
use crate::ipam::describe;
use crate::model::{Endpoint, EndpointState, Network};

/// `docker network create --opt tabby.profile=P`.
pub const PROFILE_OPTION: &str = "tabby.profile";

/// The profile of a network's endpoints: the one named by the option,
/// else one named after the network (its Docker name once learnt, its ID
/// until then and for networks made before names were learnt).
pub(super) fn network_profile(network: &Network) -> String {
    if let Some(profile) = network.options.get(PROFILE_OPTION) {
        return profile.clone();
    }
    match (&network.name, network.named_profile) {
        (Some(name), true) => name.clone(),
        _ => network.id.clone(),
    }
}

/// What Join answers: the container end of the veth, the interface's
/// gateway and the routes to install through it.
#[derive(Debug)]
pub struct JoinInfo {
    pub src_name: String,
    pub gateway: Ipv4Addr,
    /// The IPv6 gateway of a dual-stack endpoint.
    pub gateway6: Option<std::net::Ipv6Addr>,
    pub routes: Vec<StaticRoute>,
}

impl Driver {
    /// Records a Docker network. `gateway` is what IPAM gave it: anything
    /// but tabby's virtual gateway means another IPAM driver allocated the
    /// addresses, which could then collide across hosts.
    pub async fn create_network(
        &self,
        id: &str,
        pool: &str,
        gateway: &str,
        ipv6: Option<super::Ipv6Data<'_>>,
        options: BTreeMap<String, String>,
    ) -> Result<(), Error> {
        docker_id("NetworkID", id)?;
        if gateway.split('/').next() != Some(GATEWAY.to_string().as_str()) {
            return Err(Error::Invalid(
                "tabby networks need tabby's IPAM: add --ipam-driver tabby (the same name as -d)"
                    .into(),
            ));
        }
        let pool = if pool == "0.0.0.0/0" {
            let configured = self.config.default_pool.map(ipnet::IpNet::V4);
            let pool = self.ipam.default_pool(configured, false).await?;
            pool.v4().expect("an IPv4 pool asked for")
        } else {
            parse_cidr("pool", pool)?
        };
        self.ipam.pool(&pool.into()).await?;
        let pool6 = self.network_pool6(ipv6).await?;
        let profile = options
            .get(PROFILE_OPTION)
            .cloned()
            .unwrap_or_else(|| id.to_string());
        crate::validate::profile_name("profile name", &profile)?;
        self.ensure_profile(&profile).await?;
        let named_profile = !options.contains_key(PROFILE_OPTION);
        let network = Network {
            id: id.to_string(),
            host: self.host().to_string(),
            pool,
            pool6,
            options,
            created: Utc::now(),
            name: None,
            named_profile,
        };
        self.store.put_network(&network).await?;
        info!(network = id, %pool, "created network");
        self.learn_network_name(id);
        Ok(())
    }

    pub async fn delete_network(&self, id: &str) -> Result<(), Error> {
        docker_id("NetworkID", id)?;
        if self.store.network(id).await?.is_none() {
            return Err(Error::UnknownNetwork(id.to_string()));
        }
        let count = self
            .store
            .host_endpoints(self.host())
            .await?
            .iter()
            .filter(|e| e.network_id == id)
            .count();
        if count > 0 {
            return Err(Error::NetworkInUse {
                id: id.to_string(),
                count,
            });
        }
        self.store.delete_network(id).await?;
        info!(network = id, "deleted network");
        Ok(())
    }

    pub async fn create_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
        address: &str,
        address6: &str,
    ) -> Result<(), Error> {
        docker_id("NetworkID", network_id)?;
        docker_id("EndpointID", endpoint_id)?;
        if address.is_empty() {
            return Err(Error::Invalid(
                "the endpoint has no IPv4 address: tabby networks need --ipam-driver tabby".into(),
            ));
        }
        let network = self
            .store
            .network(network_id)
            .await?
            .ok_or_else(|| Error::UnknownNetwork(network_id.to_string()))?;
        let ip = parse_address("Interface.Address", address)?;
        let veth = host_veth_name(endpoint_id);
        // Three reads of etcd that need not wait for each other.
        let ((), ip6, ()) = tokio::try_join!(
            self.refuse_unallocated(ip.into()),
            self.endpoint_ip6(&network, address6),
            self.refuse_taken_veth(endpoint_id, &veth),
        )?;
        let endpoint = Endpoint {
            id: endpoint_id.to_string(),
            network_id: network_id.to_string(),
            host: self.host().to_string(),
            ip,
            ip6,
            veth,
            mac: None,
            container: None,
            state: EndpointState::Created,
            created: Utc::now(),
            profiles: vec![network_profile(&network)],
            labels: Default::default(),
            sandbox: None,
            gateway: None,
        };
        self.store.put_endpoint(&endpoint).await?;
        self.clone_handles()
            .follow_renamed_profile(network_id, &endpoint)
            .await?;
        self.complete_records(&endpoint);
        info!(endpoint = endpoint_id, %ip, "created endpoint");
        Ok(())
    }

    /// An endpoint's address must be one tabby's IPAM gave out; held by
    /// another host, it is taken with a warning (a repair may lag).
    pub(super) async fn refuse_unallocated(&self, ip: std::net::IpAddr) -> Result<(), Error> {
        match self.ipam.holder(ip).await? {
            Some(holder) if holder.host != self.host() => {
                warn!(%ip, holder = %describe(&holder), "address held by another host");
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(Error::Invalid(format!(
                "address {ip} was not allocated by tabby's IPAM"
            ))),
        }
    }

    /// The host veth's name is cut from the endpoint ID: two IDs that share
    /// their first characters would share one interface, and the second
    /// Join would take over the first endpoint's link. Refuse the second.
    async fn refuse_taken_veth(&self, endpoint_id: &str, veth: &str) -> Result<(), Error> {
        let start = &veth[crate::dataplane::VETH_PREFIX.len()..];
        let endpoints = self.store.host_endpoints_starting(self.host(), start);
        match endpoints
            .await?
            .iter()
            .find(|other| other.veth == veth && other.id != endpoint_id)
        {
            Some(other) => Err(Error::Invalid(format!(
                "endpoint {endpoint_id} would use interface {veth}, which endpoint {} already has: \
                 endpoint IDs must differ in their first {} characters",
                other.id,
                start.len()
            ))),
            None => Ok(()),
        }
    }

    /// Creates a profile with calicoctl's defaults unless it exists.
    pub(super) async fn ensure_profile(&self, name: &str) -> Result<(), Error> {
        let profile = crate::policy::rules::default_profile(name);
        if self
            .store
            .swap_profile(&profile, crate::store::Expect::Absent)
            .await?
        {
            info!(profile = name, "created profile");
        }
        Ok(())
    }

    async fn local_endpoint(&self, network_id: &str, endpoint_id: &str) -> Result<Endpoint, Error> {
        docker_id("NetworkID", network_id)?;
        docker_id("EndpointID", endpoint_id)?;
        match self.store.endpoint(self.host(), endpoint_id).await? {
            Some(ep) if ep.network_id == network_id => Ok(ep),
            _ => Err(Error::UnknownEndpoint(endpoint_id.to_string())),
        }
    }

    /// Checks that the endpoint exists (Docker's EndpointOperInfo).
    pub async fn endpoint_info(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<Endpoint, Error> {
        self.local_endpoint(network_id, endpoint_id).await
    }

    /// Makes the veth pair and the route. The endpoint was recorded by
    /// CreateEndpoint, which is what keeps a resync from removing the new
    /// veth; its gateway is recorded before the kernel is touched, state
    /// and MAC after answering.
    pub async fn join(
        &self,
        network_id: &str,
        endpoint_id: &str,
        sandbox: &str,
    ) -> Result<JoinInfo, Error> {
        let (endpoint, network) = tokio::join!(
            self.local_endpoint(network_id, endpoint_id),
            self.store.network(network_id)
        );
        let endpoint = endpoint?;
        let network = network?.ok_or_else(|| Error::UnknownNetwork(network_id.to_string()))?;
        // The endpoint's chains go in before its veth exists: no packet of
        // it ever crosses the host unpoliced.
        let pool_cidr = network.pool.into();
        let (plan, policy, pool) = tokio::join!(
            self.plan_interface(&endpoint, network.pool, sandbox),
            self.converge_policy(),
            self.store.pool(&pool_cidr)
        );
        let (plan, (), pool) = (plan?, policy?, pool?);
        let encapsulated = pool.is_some_and(|p| !p.value.vxlan.is_never());
        let attached = {
            let _kernel = self.kernel.lock().await;
            self.ensure_gateway_route(plan.gateway).await?;
            self.dataplane
                .attach(&endpoint.id, endpoint.ip, endpoint.ip6, encapsulated)
                .await?
        };
        let (store, host, mac) = (self.store.clone(), endpoint.host.clone(), attached.mac);
        tokio::spawn(async move {
            let _ = update_endpoint(&store, &host, &endpoint.id, |e| {
                e.state = EndpointState::Joined;
                e.mac = mac.clone();
            })
            .await;
        });
        Ok(JoinInfo {
            src_name: attached.peer,
            gateway: plan.gateway,
            gateway6: endpoint.ip6.map(|_| crate::dataplane::GATEWAY6),
            routes: plan.routes,
        })
    }

    /// Removes the veth pair after answering: deleting a link waits for the
    /// kernel's RCU grace period (~15 ms) and Docker needs nothing from it.
    pub async fn leave(&self, network_id: &str, endpoint_id: &str) -> Result<(), Error> {
        let endpoint = self.local_endpoint(network_id, endpoint_id).await?;
        self.detach_later(endpoint.veth.clone());
        let store = self.store.clone();
        tokio::spawn(async move {
            let _ = update_endpoint(&store, &endpoint.host, &endpoint.id, |e| {
                e.state = EndpointState::Created;
            })
            .await;
        });
        Ok(())
    }

    /// Forgets the endpoint. Its veth (normally gone with Leave already)
    /// is removed in the background, like Leave's.
    pub async fn delete_endpoint(&self, network_id: &str, endpoint_id: &str) -> Result<(), Error> {
        let endpoint = self.local_endpoint(network_id, endpoint_id).await?;
        self.drop_published_ports(endpoint_id).await?;
        self.store.delete_endpoint(self.host(), endpoint_id).await?;
        self.detach_later(endpoint.veth.clone());
        info!(endpoint = endpoint_id, ip = %endpoint.ip, "deleted endpoint");
        Ok(())
    }

    /// `docker run -p`: the port map of Join/ProgramExternalConnectivity
    /// becomes exposures of the endpoint, programmed before answering.
    pub async fn publish_ports(
        &self,
        network_id: &str,
        endpoint_id: &str,
        portmap: Option<&serde_json::Value>,
    ) -> Result<(), Error> {
        self.local_endpoint(network_id, endpoint_id).await?;
        let Some(portmap) = portmap.filter(|p| !p.is_null()) else {
            return Ok(());
        };
        let requests = crate::policy::exposures::from_portmap(endpoint_id, portmap)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        info!(endpoint = endpoint_id, %portmap, "docker port map");
        // Docker may program the same endpoint twice; the second is a no-op.
        for request in requests {
            match crate::policy::exposures::publish(&self.store, request).await {
                Ok(Some(x)) => info!(
                    endpoint = endpoint_id,
                    port = x.port,
                    host_port = x.host_port,
                    host_ip = ?x.host_ip,
                    "published port"
                ),
                Ok(None) => {}
                Err(e) => return Err(Error::Invalid(e.to_string())),
            }
        }
        self.converge_policy().await
    }

    /// RevokeExternalConnectivity: the endpoint's published ports go.
    pub async fn unpublish_ports(&self, network_id: &str, endpoint_id: &str) -> Result<(), Error> {
        self.local_endpoint(network_id, endpoint_id).await?;
        if self.drop_published_ports(endpoint_id).await? {
            self.converge_policy().await?;
        }
        Ok(())
    }

    pub(super) async fn drop_published_ports(&self, endpoint_id: &str) -> Result<bool, Error> {
        let mut dropped = false;
        for x in self.store.exposures().await? {
            if x.docker_endpoint.as_deref() == Some(endpoint_id) {
                dropped |= self.store.delete_exposure(&x.id()).await?;
            }
        }
        Ok(dropped)
    }

    fn detach_later(&self, veth: String) {
        let (dataplane, kernel) = (self.dataplane.clone(), self.kernel.clone());
        tokio::spawn(async move {
            let _kernel = kernel.lock().await;
            if let Err(err) = dataplane.detach(&veth).await {
                warn!(%veth, error = %err, "cannot remove veth; the next resync retries");
            }
        });
    }
}
