//! The plugin's HTTP surface on a Unix socket: Docker's remote
//! NetworkDriver and IpamDriver protocols. Handlers translate wire types to
//! `Driver` calls and back; no business logic lives here.

pub mod failpoint;
mod ipam;
mod network;
mod tabby;
pub mod wire;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{debug, warn};

use crate::driver::Driver;

/// Docker's plugin messages are small; anything near this is an attack or a
/// bug, and is refused before it is parsed.
pub const MAX_BODY: usize = 1 << 20;

/// An error in the shape both protocols read: NetworkDriver looks at `Err`,
/// IpamDriver at `Error` (and takes a 200 with only `Err` as success).
pub struct ApiError(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "Err": self.0, "Error": self.0 });
        (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
    }
}

impl From<crate::driver::Error> for ApiError {
    fn from(err: crate::driver::Error) -> Self {
        ApiError(err.to_string())
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// dockerd sends no Content-Type and, for argument-less calls, an empty
/// body; axum's Json extractor would answer 415. Parse by hand.
pub fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|e| ApiError(format!("cannot read request body: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| ApiError(format!("invalid request: {e}")))
}

pub fn reply(value: serde_json::Value) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

async fn activate() -> ApiResult {
    reply(json!({ "Implements": ["NetworkDriver", "IpamDriver"] }))
}

async fn log_calls(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let micros = started.elapsed().as_micros() as u64;
    if response.status().is_success() {
        debug!(call = %path, micros, "plugin call");
    } else {
        warn!(call = %path, micros, status = response.status().as_u16(), "plugin call failed");
    }
    response
}

pub fn router(driver: Arc<Driver>) -> Router {
    let router = Router::new()
        .route("/Plugin.Activate", post(activate))
        .merge(network::routes())
        .merge(ipam::routes())
        .merge(tabby::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY));
    let router = if failpoint::from_env() {
        router.layer(middleware::from_fn(failpoint::inject))
    } else {
        router
    };
    router
        .layer(middleware::from_fn(log_calls))
        .with_state(driver)
}
