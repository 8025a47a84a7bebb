//! Until the agent has reached etcd and converged once, plugin calls are
//! answered at once with a clear "etcd unavailable" error (in the shape
//! both protocols read) instead of the agent exiting or dockerd waiting;
//! calls that need no datastore answer as usual. Each refused call also
//! asks the start-up loop to try again now.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{Notify, watch};

use crate::api::ApiError;

/// Calls answered from constants: dockerd asks them when it loads the
/// plugin, and caches the answer.
const STATIC_CALLS: [&str; 5] = [
    "/Plugin.Activate",
    // `tabby status` must answer most when etcd does not.
    "/Tabby.Status",
    "/NetworkDriver.GetCapabilities",
    "/IpamDriver.GetCapabilities",
    "/IpamDriver.GetDefaultAddressSpaces",
];

/// How long a call waits for a start-up attempt in progress: etcd answers
/// (or refuses) within a request timeout when it is up or plainly down,
/// and a crashed agent's lease (node TTL 10 s by default, plus etcd's
/// slack) expires within it; dockerd gives a plugin call 30 s.
const ATTEMPT_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// A start-up attempt is running: calls wait for its outcome.
    Attempting,
    /// The last attempt failed, for this reason: calls are refused.
    Waiting(String),
    /// etcd answers, but the agent waits for something else (a previous
    /// agent's liveness lease): calls wait, then are refused saying what.
    Starting(String),
    Ready,
}

#[derive(Clone)]
pub struct Readiness {
    state: Arc<watch::Sender<State>>,
    /// Wakes the start-up loop out of its backoff.
    pub retry_now: Arc<Notify>,
    endpoints: String,
}

impl Readiness {
    pub fn new(endpoints: &[String]) -> Self {
        Readiness {
            state: Arc::new(watch::Sender::new(State::Attempting)),
            retry_now: Arc::new(Notify::new()),
            endpoints: endpoints.join(","),
        }
    }

    pub fn attempting(&self) {
        self.state.send_replace(State::Attempting);
    }

    pub fn waiting(&self, reason: String) {
        self.state.send_replace(State::Waiting(reason));
    }

    pub fn starting(&self, reason: String) {
        self.state.send_replace(State::Starting(reason));
    }

    pub fn ready(&self) {
        self.state.send_replace(State::Ready);
    }

    /// The error a call gets while the agent waits, or None when ready;
    /// an attempt in progress is waited for (bounded).
    async fn refusal(&self) -> Option<String> {
        let mut state = self.state.subscribe();
        let settled = tokio::time::timeout(
            ATTEMPT_WAIT,
            state.wait_for(|s| !matches!(s, State::Attempting | State::Starting(_))),
        )
        .await;
        let reason = match settled {
            Ok(Ok(s)) => match &*s {
                State::Ready => return None,
                State::Waiting(reason) => reason.clone(),
                State::Attempting | State::Starting(_) => unreachable!("waited for another state"),
            },
            _ => match &*self.state.borrow() {
                State::Starting(reason) => {
                    return Some(format!("the tabby agent is starting: {reason}"));
                }
                _ => format!("no answer within {}s", ATTEMPT_WAIT.as_secs()),
            },
        };
        Some(format!(
            "etcd unavailable: the tabby agent has not reached etcd at {} yet ({reason})",
            self.endpoints
        ))
    }
}

pub async fn gate(
    axum::extract::State(ready): axum::extract::State<Readiness>,
    request: Request,
    next: Next,
) -> Response {
    if !STATIC_CALLS.contains(&request.uri().path())
        && let Some(message) = ready.refusal().await
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

    // Paused time: the bounded waits cost no wall time.
    #[tokio::test(start_paused = true)]
    async fn calls_are_refused_with_both_error_fields_until_ready() {
        let ready = Readiness::new(&["http://198.18.0.11:2379".into()]);
        let ok = || async { axum::Json(serde_json::json!({})) };
        let app = Router::new()
            .route("/Plugin.Activate", post(ok))
            .route("/IpamDriver.RequestAddress", post(ok))
            .route_layer(axum::middleware::from_fn_with_state(ready.clone(), gate));
        ready.waiting("connection refused".into());

        assert_eq!(call(&app, "/Plugin.Activate").await.0, StatusCode::OK);
        let (status, body) = call(&app, "/IpamDriver.RequestAddress").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let err = body["Err"].as_str().unwrap();
        assert!(err.starts_with("etcd unavailable"), "{err}");
        assert!(err.contains("198.18.0.11:2379") && err.contains("connection refused"));
        assert_eq!(body["Error"], body["Err"]);

        ready.starting("the liveness lease of host h1 is held".into());
        let (_, body) = call(&app, "/IpamDriver.RequestAddress").await;
        let err = body["Err"].as_str().unwrap();
        assert!(
            err.starts_with("the tabby agent is starting: the liveness lease"),
            "not blamed on etcd: {err}"
        );
        // A call made while it waits goes through once the agent is ready.
        let waiting = tokio::spawn({
            let app = app.clone();
            async move { call(&app, "/IpamDriver.RequestAddress").await.0 }
        });
        tokio::task::yield_now().await;
        ready.ready();
        assert_eq!(waiting.await.unwrap(), StatusCode::OK);

        ready.ready();
        assert_eq!(
            call(&app, "/IpamDriver.RequestAddress").await.0,
            StatusCode::OK
        );
    }
}
