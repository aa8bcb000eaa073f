//! `POST /oauth2/token`: the handler, the profile it dispatches to (`rfc`, `nhs`), and what both
//! flows share — scope granting, token issuance and the success bodies.

mod jwt_bearer;
mod nhs;
mod rfc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use m2m_core::clock::UnixTime;
use m2m_core::validate::{Reason, Rejection, TokenForm};

use crate::body::{coalesce_writes, content_type, read_body};
use crate::config::Profile;
use crate::refusal::{Refusal, log_refusal};
use crate::registry::Client;
use crate::request_id::RequestId;
use crate::response::{add_basic_challenge, json_response, method_not_allowed, rejection_response};
use crate::state::AppState;

/// The rfc profile's success body (RFC 6749 §5.1). Structs, not JSON maps, for the success
/// bodies: they are built once per issued token.
#[derive(serde::Serialize)]
struct SuccessBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// NHS's success body: its member order, `expires_in` and `issued_at` (milliseconds) as strings
/// (docs/nhs-token-endpoint.md).
#[derive(serde::Serialize)]
struct NhsSuccessBody<'a> {
    access_token: &'a str,
    expires_in: String,
    token_type: &'static str,
    issued_at: String,
}

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
    let result = match read_body(&headers, body, &state.config).await {
        Err(refusal) => Err(refusal),
        Ok(body) => match (content_type(&headers), state.config.profile) {
            (Err(refusal), _) => Err(refusal),
            (Ok(ct), Profile::Rfc) => match ct.readable() {
                Err(refusal) => Err(refusal),
                Ok(ct) => rfc::rfc_flow(&state, &headers, ct, uri.query(), &body).await,
            },
            (Ok(ct), Profile::Nhs) => nhs::nhs_flow(&state, ct.lenient(), &body).await,
        },
    };
    coalesce_writes().await;
    let mut response = match result {
        Ok((response, client)) => {
            state
                .metrics
                .token_request("issued", "ok", started.elapsed());
            // debug, not info: one line per issued token would dominate a busy server's log and
            // CPU; refusals (rarer, and what operators look for) are logged at info.
            tracing::debug!(client = %client, "access token issued");
            response
        }
        Err(refusal) => {
            let outcome = if refusal.rejection.status >= 500 {
                "error"
            } else {
                "rejected"
            };
            state.metrics.token_request(
                outcome,
                refusal.rejection.reason.as_str(),
                started.elapsed(),
            );
            log_refusal(&state, &refusal, "token");
            let mut response = rejection_response(
                state.config.profile,
                state.config.opaque_errors,
                &refusal.rejection,
                &request_id,
                refusal.retry_after,
            );
            add_basic_challenge(&mut response, &refusal, &state.issuer);
            response
        }
    };
    if state.config.profile == Profile::Rfc {
        crate::dpop::add_nonce_header(&state, &mut response);
    }
    response
}

/// Scopes as the `scope` claim and response member carry them (RFC 6749 §3.3); none → `None`.
fn space_separated(scopes: &[String]) -> Option<String> {
    (!scopes.is_empty()).then(|| scopes.join(" "))
}

/// Requested scopes must be a subset of the client's; none requested → all of them.
fn granted_scopes(client: &Client, requested: Option<&str>) -> Result<Vec<String>, Refusal> {
    let Some(requested) = requested else {
        return Ok(client.scopes.clone());
    };
    let mut granted: Vec<String> = Vec::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        if !client.scopes.iter().any(|s| s == scope) {
            return Err(Refusal::from(Rejection::new(
                400,
                "invalid_scope",
                format!("scope {scope:?} is not allowed for this client"),
                Reason::ScopeNotAllowed,
            ))
            .for_client(&client.id));
        }
        if !granted.iter().any(|g| g == scope) {
            granted.push(scope.to_owned());
        }
    }
    Ok(granted)
}

/// The RFC 8707 `resource` of the request, when it has one: it must be one of the client's
/// registered `resources` (exact string), else 400 `invalid_target`. One distinct resource per
/// token: its `aud` is a single string, so a token for one API cannot be replayed at another.
fn requested_resource<'f>(
    client: &Client,
    extra: &'f [(String, String)],
) -> Result<Option<&'f str>, Refusal> {
    let mut requested: Option<&str> = None;
    for (_, value) in extra.iter().filter(|(k, _)| k == "resource") {
        let invalid_target = |message: String| {
            Refusal::from(Rejection::new(
                400,
                "invalid_target",
                message,
                Reason::Other,
            ))
            .for_client(&client.id)
        };
        if requested.is_some_and(|r| r != value) {
            return Err(invalid_target(
                "only one resource per token request".to_owned(),
            ));
        }
        if !client.resources.iter().any(|r| r == value) {
            return Err(invalid_target(format!(
                "resource {value:?} is not allowed for this client"
            )));
        }
        requested = Some(value);
    }
    Ok(requested)
}

/// The rfc profile's success answer, whichever grant got here (client credentials or
/// jwt-bearer): the granted scopes, the RFC 8707 resource, the client's lifetime, the token
/// (bound to `jkt` when a DPoP proof was accepted) and its RFC 6749 §5.1 body. `Ok` carries the
/// response and the client id (for the log).
fn answer(
    state: &AppState,
    client: &Client,
    form: &TokenForm,
    jkt: Option<&str>,
    now: UnixTime,
) -> Result<(Response, String), Refusal> {
    let scopes = granted_scopes(client, form.scope.as_deref())?;
    let resource = requested_resource(client, &form.extra)?;
    let lifetime = client
        .token_lifetime
        .unwrap_or(state.config.access_token_lifetime);
    let scope = space_separated(&scopes);
    let issued = issue_bound(
        state,
        client,
        scope.as_deref(),
        resource,
        lifetime,
        jkt,
        now,
    )?;
    let body = SuccessBody {
        access_token: &issued.token,
        token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
        expires_in: issued.expires_in,
        scope: scope.as_deref(),
    };
    Ok((json_response(StatusCode::OK, &body), client.id.clone()))
}

/// Signs the access token; a signing failure is a 500 (logged, never shown). `resource`, when
/// the client asked for one (RFC 8707), is the token's `aud`; else the client's default audience.
fn issue(
    state: &AppState,
    client: &Client,
    scope: Option<&str>,
    resource: Option<&str>,
    lifetime: Duration,
    now: UnixTime,
) -> Result<crate::issuer::IssuedToken, Refusal> {
    issue_bound(state, client, scope, resource, lifetime, None, now)
}

/// [`issue`], bound to a DPoP key when `jkt` is given (`cnf.jkt`).
fn issue_bound(
    state: &AppState,
    client: &Client,
    scope: Option<&str>,
    resource: Option<&str>,
    lifetime: Duration,
    jkt: Option<&str>,
    now: UnixTime,
) -> Result<crate::issuer::IssuedToken, Refusal> {
    let request = crate::issuer::TokenRequest {
        client_id: &client.id,
        audience: resource.unwrap_or(client.audience.as_deref().unwrap_or(&state.issuer)),
        scope,
        lifetime,
        jkt,
    };
    state.tokens.issue(&request, now).map_err(|e| {
        tracing::error!(error = %e, "signing the access token failed");
        Refusal::from(Rejection::new(
            500,
            "server_error",
            "the access token could not be signed",
            Reason::Other,
        ))
    })
}
