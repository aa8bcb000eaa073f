//! The rfc profile's token flow (RFC 6749 / RFC 7523): form → grant → client authentication
//! (which applies the rate limit before the replay insert) → scopes → token, in the order docs/protocol.md fixes;
//! a DPoP proof is checked before client authentication and bound after it (`crate::dpop`).

use axum::http::HeaderMap;
use axum::response::Response;
use m2m_core::validate::parse_token_form;
use m2m_core::wire::GRANT_JWT_BEARER;

use crate::refusal::Refusal;
use crate::state::AppState;
use crate::{client_auth, dpop};

/// One rfc-profile token request; `Ok` carries the response and the client id (for the log).
pub(super) async fn rfc_flow(
    state: &AppState,
    headers: &HeaderMap,
    content_type: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> Result<(Response, String), Refusal> {
    let form = parse_token_form(content_type, query, body, false)?;
    // The jwt-bearer grant exists once an issuer is trusted; until then it is unsupported.
    if form.grant_type.as_deref() == Some(GRANT_JWT_BEARER)
        && !state.registry.current().trusts().is_empty()
    {
        return super::jwt_bearer::jwt_bearer_flow(state, headers, &form).await;
    }
    state.rfc.check_grant(&form)?;
    let now = state.config.clock.now();
    // DPoP (docs/dpop.md): the proof before client authentication, the binding after it.
    let proof = dpop::check_proof(state, headers, now)?;
    let client = client_auth::authenticate(state, headers, &form, now)
        .await?
        .client;
    let jkt = dpop::bind(state, &client, proof, now).await?;
    super::answer(state, &client, &form, jkt.as_deref(), now)
}
