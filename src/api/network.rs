//! NetworkDriver endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::post;
use serde_json::{Value, json};

use super::wire::*;
use super::{ApiError, ApiResult, parse, reply};
use crate::driver::{Driver, Ipv6Data};

type Body = Result<Bytes, BytesRejection>;

async fn capabilities() -> ApiResult {
    // Global scope needs swarm or the removed cluster store; tabby makes
    // the per-host local networks one network itself.
    reply(json!({ "Scope": "local", "ConnectivityScope": "global" }))
}

/// `-o k=v` options, flattened to strings.
fn generic_options(options: &Options) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(generic) = options.as_ref().and_then(|o| o.get(GENERIC_OPTIONS)) else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(map) = generic else {
        return Err(ApiError(format!("{GENERIC_OPTIONS} must be an object")));
    };
    Ok(map
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect())
}

async fn create_network(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: CreateNetworkRequest = parse(body)?;
    let ipv6 = match req.ipv6_data.as_deref() {
        Some([one]) => Some(Ipv6Data {
            pool: &one.pool,
            gateway: &one.gateway,
        }),
        Some([]) | None => None,
        Some(_) => {
            return Err(ApiError(
                "tabby networks take one IPv6 --subnet at most".into(),
            ));
        }
    };
    let data = match req.ipv4_data.as_deref() {
        Some([one]) => one,
        Some([]) | None => {
            return Err(ApiError(
                "no IPv4 pool: tabby networks need --ipam-driver tabby".into(),
            ));
        }
        Some(_) => return Err(ApiError("tabby networks take exactly one --subnet".into())),
    };
    let options = generic_options(&req.options)?;
    driver
        .create_network(&req.network_id, &data.pool, &data.gateway, ipv6, options)
        .await?;
    reply(json!({}))
}

async fn delete_network(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: NetworkRequest = parse(body)?;
    driver.delete_network(&req.network_id).await?;
    reply(json!({}))
}

async fn create_endpoint(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: CreateEndpointRequest = parse(body)?;
    let interface = req.interface.as_ref();
    let address = interface.map(|i| i.address.as_str()).unwrap_or("");
    let address6 = interface.map(|i| i.address_ipv6.as_str()).unwrap_or("");
    driver
        .create_endpoint(&req.network_id, &req.endpoint_id, address, address6)
        .await?;
    // Docker filled the address; echoing any field it sent is an error
    // ("driver modified interface address").
    reply(json!({}))
}

async fn endpoint_info(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: EndpointRequest = parse(body)?;
    let ep = driver
        .endpoint_info(&req.network_id, &req.endpoint_id)
        .await?;
    reply(
        json!({ "Value": { "ip": ep.ip.to_string(), "veth": ep.veth, "state": ep.state.to_string() } }),
    )
}

async fn delete_endpoint(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: EndpointRequest = parse(body)?;
    driver
        .delete_endpoint(&req.network_id, &req.endpoint_id)
        .await?;
    reply(json!({}))
}

async fn join(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: JoinRequest = parse(body)?;
    let info = driver
        .join(&req.network_id, &req.endpoint_id, &req.sandbox_key)
        .await?;
    let static_routes = info
        .routes
        .iter()
        .map(|r| StaticRoute {
            destination: r.dst.to_string(),
            route_type: if r.via.is_some() { 0 } else { 1 },
            next_hop: r.via.map(|ip| ip.to_string()).unwrap_or_default(),
        })
        .collect();
    let resp = JoinResponse {
        interface_name: InterfaceName {
            src_name: info.src_name,
            dst_prefix: "eth".into(),
        },
        gateway: info.gateway.to_string(),
        gateway_ipv6: info.gateway6.map(|g| g.to_string()).unwrap_or_default(),
        static_routes,
        disable_gateway_service: false,
    };
    reply(serde_json::to_value(resp).expect("serializable"))
}

async fn leave(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: EndpointRequest = parse(body)?;
    driver.leave(&req.network_id, &req.endpoint_id).await?;
    reply(json!({}))
}

/// Docker's `-p` bindings, under this option key.
const PORT_MAP: &str = "com.docker.network.portmap";

async fn program_external(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: JoinRequest = parse(body)?;
    let portmap = req.options.as_ref().and_then(|o| o.get(PORT_MAP));
    driver
        .publish_ports(&req.network_id, &req.endpoint_id, portmap)
        .await?;
    reply(json!({}))
}

async fn revoke_external(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: EndpointRequest = parse(body)?;
    driver
        .unpublish_ports(&req.network_id, &req.endpoint_id)
        .await?;
    reply(json!({}))
}

/// Swarm-only and discovery calls: accepted, nothing to do.
async fn accept_network(body: Body) -> ApiResult {
    let _: NetworkRequest = parse(body)?;
    reply(json!({}))
}

async fn discover(body: Body) -> ApiResult {
    let _: DiscoveryRequest = parse(body)?;
    reply(json!({}))
}

pub fn routes() -> Router<Arc<Driver>> {
    Router::new()
        .route("/NetworkDriver.GetCapabilities", post(capabilities))
        .route("/NetworkDriver.CreateNetwork", post(create_network))
        .route("/NetworkDriver.DeleteNetwork", post(delete_network))
        .route("/NetworkDriver.AllocateNetwork", post(accept_network))
        .route("/NetworkDriver.FreeNetwork", post(accept_network))
        .route("/NetworkDriver.CreateEndpoint", post(create_endpoint))
        .route("/NetworkDriver.EndpointOperInfo", post(endpoint_info))
        .route("/NetworkDriver.DeleteEndpoint", post(delete_endpoint))
        .route("/NetworkDriver.Join", post(join))
        .route("/NetworkDriver.Leave", post(leave))
        .route("/NetworkDriver.DiscoverNew", post(discover))
        .route("/NetworkDriver.DiscoverDelete", post(discover))
        .route(
            "/NetworkDriver.ProgramExternalConnectivity",
            post(program_external),
        )
        .route(
            "/NetworkDriver.RevokeExternalConnectivity",
            post(revoke_external),
        )
}
