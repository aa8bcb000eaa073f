//! `GET /healthz` (the process answers) and `GET /readyz` (it can do its job: the replay store
//! answers, since without it every token request fails closed with 503).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Liveness: always 200 while the process serves.
pub(crate) async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// Readiness: 200 when the replay store is healthy, else 503 (take the instance out of the
/// load balancer rather than let it refuse every token request).
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.replay.health().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            state.metrics.store_error();
            tracing::warn!(store = state.replay.kind(), error = %e, "readiness: replay store unhealthy");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("replay store ({}) unavailable\n", state.replay.kind()),
            )
                .into_response()
        }
    }
}
