//! `POST /oauth2/introspect` (RFC 7662). Callers authenticate exactly as at the token endpoint,
//! with the method they are registered for (`private_key_jwt`, `client_secret_basic`,
//! `client_secret_post`, `client_secret_jwt`; assertions: `aud` = the issuer, single-use
//! `jti`), and the form carries `token` (and optionally `token_type_hint`, ignored).
//!
//! Visibility rule (RFC 7662 §4 leaves it to the server): a caller sees a token as active only
//! if the token was issued to it (`client_id` = caller) or is addressed to it (the caller's id is
//! the token's `aud`, i.e. a resource server registered as a client under its audience URI).
//! Everything else — invalid, expired, foreign, someone else's — is `{"active": false}`, so the
//! endpoint cannot be used to probe other clients' tokens.

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use m2m_core::validate::{Reason, Rejection, parse_token_form};
use serde_json::{Map, Value, json};

use crate::body::{coalesce_writes, content_type, read_body};
use crate::client_auth;
use crate::config::Profile;
use crate::refusal::{Refusal, log_refusal};
use crate::request_id::RequestId;
use crate::response::{add_basic_challenge, json_response, method_not_allowed, rejection_response};
use crate::state::AppState;

/// Claims copied into an active introspection response (RFC 7662 §2.2; `cnf` for a DPoP-bound
/// token, RFC 9449 §6.2).
const EXPOSED_CLAIMS: [&str; 9] = [
    "scope",
    "client_id",
    "sub",
    "aud",
    "iss",
    "exp",
    "iat",
    "jti",
    "cnf",
];

/// The handler.
pub(crate) async fn handle(
    State(state): State<Arc<AppState>>,
    Extension(request_id): Extension<RequestId>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method != Method::POST {
        return method_not_allowed();
    }
    let started = Instant::now();
    let result = introspect(&state, &headers, uri.query(), body).await;
    coalesce_writes().await;
    match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(refusal) => {
            log_refusal(&state, &refusal, "introspect");
            tracing::debug!(elapsed = ?started.elapsed(), "introspection refused");
            // Introspection is not an NHS endpoint: always RFC bodies.
            let mut response = rejection_response(
                Profile::Rfc,
                state.config.opaque_errors,
                &refusal.rejection,
                &request_id,
                refusal.retry_after,
            );
            add_basic_challenge(&mut response, &refusal, &state.issuer);
            response
        }
    }
}

async fn introspect(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Body,
) -> Result<Value, Refusal> {
    let body = read_body(headers, body, &state.config).await?;
    let content_type = content_type(headers)?.readable()?;
    let form = parse_token_form(content_type, query, &body, false)?;
    // The caller authenticates exactly as at the token endpoint (`client_auth::authenticate`,
    // which checks no grant); introspection has no grant_type.
    if form.grant_type.is_some() {
        return Err(Refusal::from(Rejection::invalid_request(
            Reason::Other,
            "grant_type is not an introspection parameter",
        )));
    }
    let token = form
        .extra
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone());
    let now = state.config.clock.now();
    let caller = client_auth::authenticate(state, headers, &form, now)
        .await?
        .client;
    let Some(token) = token else {
        return Err(Refusal::from(Rejection::invalid_request(
            Reason::Other,
            "the token parameter is missing",
        )));
    };
    let claims = match state.tokens.verify(&token, now) {
        Ok(claims) => claims,
        Err(why) => {
            tracing::info!(caller = %caller.id, why, "introspection: inactive token");
            return Ok(json!({ "active": false }));
        }
    };
    let issued_to_caller =
        claims.get("client_id").and_then(Value::as_str) == Some(caller.id.as_str());
    let addressed_to_caller = match claims.get("aud") {
        Some(Value::String(aud)) => aud == &caller.id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(caller.id.as_str())),
        _ => false,
    };
    if !issued_to_caller && !addressed_to_caller {
        tracing::info!(caller = %caller.id, "introspection: token not visible to this caller");
        return Ok(json!({ "active": false }));
    }
    let mut out = Map::new();
    out.insert("active".to_owned(), Value::Bool(true));
    for name in EXPOSED_CLAIMS {
        if let Some(v) = claims.get(name) {
            out.insert(name.to_owned(), v.clone());
        }
    }
    let token_type = if claims.contains_key("cnf") {
        "DPoP"
    } else {
        "Bearer"
    };
    out.insert("token_type".to_owned(), json!(token_type));
    Ok(Value::Object(out))
}
