//! IpamDriver endpoints.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::post;
use serde_json::json;

use super::wire::*;
use super::{ApiResult, parse, reply};
use crate::driver::Driver;

type Body = Result<Bytes, BytesRejection>;

async fn capabilities() -> ApiResult {
    // No request replay: tabby keeps its own allocations in etcd and
    // reconciles them itself, so dockerd's replays would only duplicate.
    reply(json!({ "RequiresMACAddress": false, "RequiresRequestReplay": false }))
}

async fn default_address_spaces() -> ApiResult {
    reply(json!({
        "LocalDefaultAddressSpace": "tabby-local",
        "GlobalDefaultAddressSpace": "tabby-global",
    }))
}

async fn request_pool(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: RequestPoolRequest = parse(body)?;
    let grant = driver
        .request_pool(&req.pool, &req.sub_pool, req.v6)
        .await?;
    let resp = RequestPoolResponse {
        pool_id: grant.pool_id,
        pool: grant.pool,
        data: grant.data,
    };
    reply(serde_json::to_value(resp).expect("serializable"))
}

async fn release_pool(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: ReleasePoolRequest = parse(body)?;
    driver.release_pool(&req.pool_id).await?;
    reply(json!({}))
}

async fn request_address(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: RequestAddressRequest = parse(body)?;
    let options = req.options.unwrap_or_default();
    let address = driver
        .request_address(&req.pool_id, &req.address, &options)
        .await?;
    let resp = RequestAddressResponse {
        address,
        data: Default::default(),
    };
    reply(serde_json::to_value(resp).expect("serializable"))
}

async fn release_address(State(driver): State<Arc<Driver>>, body: Body) -> ApiResult {
    let req: ReleaseAddressRequest = parse(body)?;
    driver.release_address(&req.pool_id, &req.address).await?;
    reply(json!({}))
}

pub fn routes() -> Router<Arc<Driver>> {
    Router::new()
        .route("/IpamDriver.GetCapabilities", post(capabilities))
        .route(
            "/IpamDriver.GetDefaultAddressSpaces",
            post(default_address_spaces),
        )
        .route("/IpamDriver.RequestPool", post(request_pool))
        .route("/IpamDriver.ReleasePool", post(release_pool))
        .route("/IpamDriver.RequestAddress", post(request_address))
        .route("/IpamDriver.ReleaseAddress", post(release_address))
}
