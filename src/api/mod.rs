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

/// The reason a call failed, kept on the response for the call's log line.
#[derive(Clone)]
struct FailReason(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "Err": self.0, "Error": self.0 });
        let mut response = (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
        response.extensions_mut().insert(FailReason(self.0));
        response
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

/// The IDs a call names, for its log line.
#[derive(Default)]
struct CallIds {
    network: String,
    endpoint: String,
    pool: String,
}

impl CallIds {
    fn of(body: &[u8]) -> CallIds {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let field = |name: &str| value[name].as_str().unwrap_or("-").to_string();
        CallIds {
            network: field("NetworkID"),
            endpoint: field("EndpointID"),
            pool: field("PoolID"),
        }
    }
}

/// Logs and times every call. A failed one is logged at warn with the
/// IDs it named and its reason: dockerd shows the reason to the user who
/// ran `docker run`, and the operator reads it here.
async fn log_calls(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    // Over the limit: the handler's own body limit answers it.
    let body = axum::body::to_bytes(body, MAX_BODY + 1)
        .await
        .unwrap_or_default();
    // Kept (a cheap clone) to name the IDs if the call fails.
    let request = Request::from_parts(parts, axum::body::Body::from(body.clone()));
    let response = next.run(request).await;
    let micros = started.elapsed().as_micros() as u64;
    let ok = response.status().is_success();
    crate::metrics::get().plugin_call(&path, ok, started);
    if ok {
        debug!(call = %path, micros, "plugin call");
    } else {
        let reason = response
            .extensions()
            .get::<FailReason>()
            .map_or("-", |r| r.0.as_str());
        let ids = CallIds::of(&body);
        warn!(
            call = %path,
            network = %ids.network,
            endpoint = %ids.endpoint,
            pool = %ids.pool,
            status = response.status().as_u16(),
            micros,
            "plugin call failed: {reason}"
        );
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
