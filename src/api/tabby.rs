//! tabby's own calls on the plugin socket, for the CLI: kernel repairs run
//! in the agent that owns the host, never in a second process.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::post;
use serde::Deserialize;

use super::{ApiResult, parse, reply};
use crate::driver::Driver;

#[derive(Deserialize)]
struct CheckRequest {
    host: String,
    repair: bool,
    grace: i64,
}

async fn ipam_check(
    State(driver): State<Arc<Driver>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: CheckRequest = parse(body)?;
    let grace = chrono::Duration::seconds(req.grace.max(0));
    let report = driver.check_for(&req.host, grace, req.repair).await?;
    let value = serde_json::to_value(&report)
        .map_err(|e| super::ApiError(format!("cannot encode the report: {e}")))?;
    reply(value)
}

async fn status(State(driver): State<Arc<Driver>>) -> ApiResult {
    let status = driver.status().await;
    let value = serde_json::to_value(&status)
        .map_err(|e| super::ApiError(format!("cannot encode the status: {e}")))?;
    reply(value)
}

pub fn routes() -> Router<Arc<Driver>> {
    Router::new()
        .route("/Tabby.IpamCheck", post(ipam_check))
        .route("/Tabby.Status", post(status))
}
