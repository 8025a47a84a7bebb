//! Until the agent has reached etcd and converged once, plugin calls are
//! answered at once with a clear "etcd unavailable" error (in the shape
//! both protocols read) instead of the agent exiting or dockerd waiting;
//! calls that need no datastore answer as usual. Each refused call also
//! asks the start-up loop to try again now.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use crate::api::ApiError;

/// Calls answered from constants: dockerd asks them when it loads the
/// plugin, and caches the answer.
const STATIC_CALLS: [&str; 4] = [
    "/Plugin.Activate",
    "/NetworkDriver.GetCapabilities",
    "/IpamDriver.GetCapabilities",
    "/IpamDriver.GetDefaultAddressSpaces",
];

#[derive(Clone)]
pub struct Readiness {
    /// Why calls are refused; None once the agent has converged.
    waiting: Arc<Mutex<Option<String>>>,
    /// Wakes the start-up loop out of its backoff.
    pub retry_now: Arc<Notify>,
    endpoints: String,
}

impl Readiness {
    pub fn new(endpoints: &[String]) -> Self {
        Readiness {
            waiting: Arc::new(Mutex::new(Some("not tried yet".into()))),
            retry_now: Arc::new(Notify::new()),
            endpoints: endpoints.join(","),
        }
    }

    pub fn waiting(&self, reason: String) {
        *self.waiting.lock().expect("not poisoned") = Some(reason);
    }

    pub fn ready(&self) {
        *self.waiting.lock().expect("not poisoned") = None;
    }

    /// The error a call gets while the agent waits, or None when ready.
    fn refusal(&self) -> Option<String> {
        let waiting = self.waiting.lock().expect("not poisoned");
        waiting.as_ref().map(|reason| {
            format!(
                "etcd unavailable: the tabby agent has not reached etcd at {} yet ({reason})",
                self.endpoints
            )
        })
    }
}

pub async fn gate(State(ready): State<Readiness>, request: Request, next: Next) -> Response {
    if !STATIC_CALLS.contains(&request.uri().path())
        && let Some(message) = ready.refusal()
    {
        ready.retry_now.notify_one();
        return ApiError(message).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    async fn call(app: &Router, path: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::post(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    #[tokio::test]
    async fn calls_are_refused_with_both_error_fields_until_ready() {
        let ready = Readiness::new(&["http://198.18.0.11:2379".into()]);
        let ok = || async { axum::Json(serde_json::json!({})) };
        let app = Router::new()
            .route("/Plugin.Activate", post(ok))
            .route("/IpamDriver.RequestAddress", post(ok))
            .layer(axum::middleware::from_fn_with_state(ready.clone(), gate));
        ready.waiting("connection refused".into());

        assert_eq!(call(&app, "/Plugin.Activate").await.0, StatusCode::OK);
        let (status, body) = call(&app, "/IpamDriver.RequestAddress").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let err = body["Err"].as_str().unwrap();
        assert!(err.starts_with("etcd unavailable"), "{err}");
        assert!(err.contains("198.18.0.11:2379") && err.contains("connection refused"));
        assert_eq!(body["Error"], body["Err"]);

        ready.ready();
        assert_eq!(
            call(&app, "/IpamDriver.RequestAddress").await.0,
            StatusCode::OK
        );
    }
}
