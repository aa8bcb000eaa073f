//! `/oauth2/authorize`: the authorization endpoint the RFC 8414 metadata names only because
//! widely used clients (the MCP Python SDK 2.3.0) refuse metadata without one. This server has no
//! user-facing grant, so every request gets 400 `unsupported_response_type` and a short page
//! saying what to use instead.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The page: plain text, so it reads the same in a browser and in a log.
const PAGE: &str = "400 unsupported_response_type\n\n\
This authorization server issues tokens with the client-credentials grant only \
(POST to the token_endpoint of its metadata). It has no authorization endpoint for users; \
this URL exists because some clients require the metadata to name one.\n";

/// The handler, for every method.
pub(crate) async fn refuse() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}
