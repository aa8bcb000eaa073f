//! The admin listener's router: `/healthz` (the process is up) and `/metrics` (Prometheus text),
//! on its own address so that the proxied API's paths are never shadowed.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::{Metrics, plain};

/// `/healthz` and `/metrics` over `metrics`.
pub(crate) fn admin_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { plain(StatusCode::OK, "ok\n") }))
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
                }
            }),
        )
        .fallback(|| async { plain(StatusCode::NOT_FOUND, "not found\n") })
}
