//! How the server's non-success answers are written: a refusal as RFC 6749 §5.2 JSON in the rfc
//! profile (generic descriptions under `opaque_errors`) or NHS's exact body with `message_id` in
//! the nhs profile, the 405 and the `/oauth2/*` 404 — plus the JSON writer every body goes through.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use m2m_core::validate::Rejection;
use serde_json::{Map, Value, json};

use crate::config::Profile;
use crate::request_id::RequestId;
use crate::state::AppState;

/// A JSON response with the headers RFC 6749 §5.1 requires on token responses.
pub(crate) fn json_response<T: serde::Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
) -> Response {
    // Room for a token response (an ES256 access token is ~600 bytes), so the body is written
    // without regrowing its buffer.
    let mut bytes = Vec::with_capacity(1024);
    if serde_json::to_writer(&mut bytes, body).is_err() {
        // Our bodies are strings and numbers: this is a bug, and no half-written body goes out.
        tracing::error!("a response body could not be serialized");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut response = Response::new(axum::body::Body::from(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A JSON body with members in the given order (serde_json keeps insertion order).
pub(crate) fn ordered(members: &[(&str, Value)]) -> Value {
    let mut map = Map::new();
    for (k, v) in members {
        map.insert((*k).to_owned(), v.clone());
    }
    Value::Object(map)
}

/// The response for a refusal.
pub(crate) fn rejection_response(
    profile: Profile,
    opaque: bool,
    rejection: &Rejection,
    request_id: &RequestId,
    retry_after: Option<Duration>,
) -> Response {
    let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = match profile {
        Profile::Nhs => ordered(&[
            ("error", json!(rejection.error)),
            ("error_description", json!(rejection.description)),
            ("message_id", json!(format!("rrt-{}", request_id.0))),
        ]),
        Profile::Rfc => {
            let description = if opaque {
                opaque_description(rejection.status)
            } else {
                &rejection.description
            };
            ordered(&[
                ("error", json!(rejection.error)),
                ("error_description", json!(description)),
            ])
        }
    };
    let mut response = json_response(status, &body);
    if let Some(v) =
        retry_after.and_then(|w| HeaderValue::from_str(&w.as_secs().max(1).to_string()).ok())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Adds `WWW-Authenticate: Basic realm="…"` to a 401 for a request that tried
/// `Authorization: Basic` (RFC 6749 §5.2).
pub(crate) fn add_basic_challenge(
    response: &mut Response,
    refusal: &crate::refusal::Refusal,
    realm: &str,
) {
    if !refusal.basic_challenge || refusal.rejection.status != 401 {
        return;
    }
    let realm: String = realm
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
}

/// What `opaque_errors` says instead of the precise reason (which stays in the log).
fn opaque_description(status: u16) -> &'static str {
    match status {
        401 => "client authentication failed",
        413 => "request body too large",
        415 => "unsupported media type",
        429 => "rate limit exceeded",
        503 => "temporarily unavailable",
        _ => "invalid request",
    }
}

/// 405 with `Allow: POST` and an empty body (NHS row 2; RFC 9110 §15.5.6).
pub(crate) fn method_not_allowed() -> Response {
    let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// Unknown paths under `/oauth2/`: NHS's 404 body (docs/nhs-token-endpoint.md, row 45) in the
/// nhs profile, an empty 404 in the rfc profile.
pub(crate) async fn oauth_not_found(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
) -> Response {
    match state.config.profile {
        Profile::Nhs => json_response(
            StatusCode::NOT_FOUND,
            &ordered(&[
                ("error", "invalid_request".into()),
                ("error_description", "Not Found".into()),
                ("message_id", format!("rrt-{}", id.0).into()),
            ]),
        ),
        Profile::Rfc => StatusCode::NOT_FOUND.into_response(),
    }
}
