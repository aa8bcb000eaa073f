//! The nhs profile's token flow: NHS England's check order, status codes and exact strings
//! (docs/nhs-token-endpoint.md), with the constants only NHS has.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use m2m_core::validate::nhs::messages;
use m2m_core::validate::{Reason, Rejection};

use super::{NhsSuccessBody, issue, space_separated};
use crate::client_auth::{KeysProblem, client_keys};
use crate::refusal::{Refusal, rate_limit, store_unavailable};
use crate::response::json_response;
use crate::state::AppState;

/// How long NHS remembers a `jti`: 30 days, whatever the assertion's `exp`
/// (docs/nhs-token-endpoint.md).
pub(crate) const NHS_JTI_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The scope prefix NHS requires among an app's products (docs/nhs-token-endpoint.md, row 42).
pub(crate) const NHS_LEVEL3_SCOPE_PREFIX: &str = "urn:nhsd:apim:app:level3:";

/// The longest `sub` and `jti` the emulator accepts. NHS's API keys are 32 characters and its
/// `jti`s GUIDs; the cap keeps one request's replay entry small (docs/security.md, F2).
pub(crate) const NHS_MAX_CLAIM_BYTES: usize = 256;

/// NHS's order (docs/nhs-token-endpoint.md, §2.1): 415 → grant → assertion type → decode →
/// header/claim checks (plus the length caps on `sub` and `jti`) → far-future `exp` → app lookup
/// (401) → rate limit → replay (before JWKS and signature: failures later still burn the jti)
/// → JWKS (403s) → VerifyJWT → level-3 scope check → token.
///
/// Where it departs from NHS (docs/nhs-token-endpoint.md §5): NHS
/// records the `jti` before the app lookup and the rate limit. Here a request whose `sub` names
/// no app, or that is over its app's rate limit, records nothing, so a sender without a key
/// cannot fill the replay store: entries are only written for registered apps, at most at
/// their rate limit.
pub(super) async fn nhs_flow(
    state: &AppState,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(Response, String), Refusal> {
    let form = state.nhs.parse_form(content_type, body)?;
    let now = state.config.clock.now();
    let pending = state.nhs.precheck(&form, now)?;
    let (sub, jti) = (pending.sub(), pending.jti());
    if sub.len() > NHS_MAX_CLAIM_BYTES {
        // No app has such an API key: the unknown-app answer, without recording anything.
        return Err(Refusal::from(state.nhs.unknown_app()));
    }
    if jti.len() > NHS_MAX_CLAIM_BYTES {
        return Err(Refusal::from(Rejection::new(
            400,
            "invalid_request",
            messages::JTI_INVALID,
            Reason::JtiInvalid,
        ))
        .for_client(sub));
    }
    if pending.far_future() {
        return match state.replay.contains(sub, jti, now).await {
            Ok(true) => Err(Refusal::from(state.nhs.non_unique_jti()).for_client(sub)),
            Ok(false) => Err(Refusal::from(pending.far_future_rejection()).for_client(sub)),
            Err(e) => Err(store_unavailable(state, &e).for_client(sub)),
        };
    }
    let Some(client) = state.registry.get(sub) else {
        return Err(Refusal::from(state.nhs.unknown_app()).for_client(sub));
    };
    rate_limit(state, &client, now)?;
    match state
        .replay
        .insert_if_absent(sub, jti, now.add(NHS_JTI_TTL), now)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(Refusal::from(state.nhs.non_unique_jti()).for_client(sub)),
        Err(e) => return Err(store_unavailable(state, &e).for_client(sub)),
    }
    let keys = match client_keys(state, &client, pending.kid()).await {
        Ok(keys) => keys,
        Err(KeysProblem::NoKeys) => {
            return Err(Refusal::from(state.nhs.no_public_key()).for_client(sub));
        }
        Err(KeysProblem::Unreachable) => {
            return Err(Refusal::from(state.nhs.jwks_unreachable()).for_client(sub));
        }
    };
    state
        .nhs
        .verify(&pending, keys.as_slice())
        .map_err(|r| Refusal::from(r).for_client(sub))?;
    if !client.scopes.is_empty()
        && !client
            .scopes
            .iter()
            .any(|s| s.starts_with(NHS_LEVEL3_SCOPE_PREFIX))
    {
        return Err(Refusal::from(state.nhs.unauthorized_client()).for_client(sub));
    }
    let mut lifetime = client
        .token_lifetime
        .unwrap_or(state.config.access_token_lifetime);
    // NHS's test hook `_access_token_expiry_ms` may only shorten the token
    // (docs/nhs-token-endpoint.md, row 44).
    if let Some(ms) = form
        .extra
        .iter()
        .find(|(k, _)| k == "_access_token_expiry_ms")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
    {
        lifetime = lifetime
            .min(Duration::from_millis(ms))
            .max(Duration::from_secs(1));
    }
    let scope = space_separated(&client.scopes);
    let issued = issue(state, &client, scope.as_deref(), None, lifetime, now)?;
    let body = NhsSuccessBody {
        access_token: &issued.token,
        // NHS reports one second less than the lifetime ("599" for 600 s), as strings.
        expires_in: issued.expires_in.saturating_sub(1).to_string(),
        token_type: "Bearer",
        issued_at: now.as_millis().to_string(),
    };
    Ok((json_response(StatusCode::OK, &body), client.id.clone()))
}
