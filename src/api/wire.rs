//! Docker's remote network and IPAM driver protocol, as dockerd really
//! sends it (moby libnetwork drivers/remote/api and ipams/remote/api).
//! Field names are spelled out: serde's PascalCase would say `NetworkId`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Docker sends `null` for empty maps; treat both the same.
pub type Options = Option<HashMap<String, Value>>;

#[derive(Debug, Deserialize)]
pub struct IpamData {
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    #[serde(rename = "Pool")]
    pub pool: String,
    #[serde(rename = "Gateway", default)]
    pub gateway: String,
    #[serde(rename = "AuxAddresses", default)]
    pub aux_addresses: Option<HashMap<String, String>>,
}

#[derive(Debug, Deserialize)]
pub struct CreateNetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "Options", default)]
    pub options: Options,
    #[serde(rename = "IPv4Data", default)]
    pub ipv4_data: Option<Vec<IpamData>>,
    #[serde(rename = "IPv6Data", default)]
    pub ipv6_data: Option<Vec<IpamData>>,
}

#[derive(Debug, Deserialize)]
pub struct NetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

#[derive(Debug, Deserialize)]
pub struct EndpointInterface {
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "AddressIPv6", default)]
    pub address_ipv6: String,
    #[serde(rename = "MacAddress", default)]
    pub mac_address: String,
}

#[derive(Debug, Deserialize)]
pub struct CreateEndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Interface", default)]
    pub interface: Option<EndpointInterface>,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

/// Leave, DeleteEndpoint, EndpointOperInfo, RevokeExternalConnectivity.
#[derive(Debug, Deserialize)]
pub struct EndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// Join and ProgramExternalConnectivity.
#[derive(Debug, Deserialize)]
pub struct JoinRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "SandboxKey", default)]
    pub sandbox_key: String,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

#[derive(Debug, Serialize)]
pub struct InterfaceName {
    #[serde(rename = "SrcName")]
    pub src_name: String,
    #[serde(rename = "DstPrefix")]
    pub dst_prefix: String,
}

#[derive(Debug, Serialize)]
pub struct StaticRoute {
    #[serde(rename = "Destination")]
    pub destination: String,
    /// 0 = through `NextHop`, 1 = connected (no next hop).
    #[serde(rename = "RouteType")]
    pub route_type: u8,
    #[serde(rename = "NextHop", skip_serializing_if = "String::is_empty")]
    pub next_hop: String,
}

#[derive(Debug, Serialize)]
pub struct JoinResponse {
    #[serde(rename = "InterfaceName")]
    pub interface_name: InterfaceName,
    #[serde(rename = "Gateway")]
    pub gateway: String,
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "String::is_empty")]
    pub gateway_ipv6: String,
    #[serde(rename = "StaticRoutes")]
    pub static_routes: Vec<StaticRoute>,
    #[serde(rename = "DisableGatewayService")]
    pub disable_gateway_service: bool,
}

#[derive(Debug, Deserialize)]
pub struct DiscoveryRequest {
    #[serde(rename = "DiscoveryType")]
    pub discovery_type: i64,
    #[serde(rename = "DiscoveryData", default)]
    pub discovery_data: Value,
}

#[derive(Debug, Deserialize)]
pub struct RequestPoolRequest {
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    #[serde(rename = "Pool", default)]
    pub pool: String,
    #[serde(rename = "SubPool", default)]
    pub sub_pool: String,
    #[serde(rename = "Options", default)]
    pub options: Option<HashMap<String, String>>,
    #[serde(rename = "V6", default)]
    pub v6: bool,
}

#[derive(Debug, Serialize)]
pub struct RequestPoolResponse {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(rename = "Pool")]
    pub pool: String,
    #[serde(rename = "Data")]
    pub data: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct ReleasePoolRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

#[derive(Debug, Deserialize)]
pub struct RequestAddressRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "Options", default)]
    pub options: Option<HashMap<String, String>>,
}

#[derive(Debug, Serialize)]
pub struct RequestAddressResponse {
    #[serde(rename = "Address")]
    pub address: String,
    #[serde(rename = "Data")]
    pub data: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct ReleaseAddressRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(rename = "Address")]
    pub address: String,
}

/// Generic options (`docker network create -o k=v`) arrive nested under
/// this key of CreateNetwork's Options.
pub const GENERIC_OPTIONS: &str = "com.docker.network.generic";
