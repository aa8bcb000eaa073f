//! The RFC 7523 §2.1 jwt-bearer grant (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`,
//! `assertion=JWT`): a workload's token from a trusted issuer (`[[trust]]`) exchanged for an
//! access token. Client authentication is optional; when present it must succeed, and a rule
//! mapping to a client must map to that client. Refusals of the token are 400 `invalid_grant`
//! (RFC 7523 §3.1). A DPoP proof binds the token as on the client-credentials path
//! (docs/dpop.md): checked first, bound after the workload's token is accepted.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;
use m2m_core::validate::{Reason, Rejection, TokenForm};

use crate::refusal::{Refusal, rate_limit};
use crate::registry::Client;
use crate::state::AppState;
use crate::trust::TrustGrant;
use crate::trust::verify::{record_jti, verify_token};
use crate::{client_auth, dpop};

/// One jwt-bearer grant request; `Ok` carries the response and the token's subject (for the log).
pub(super) async fn jwt_bearer_flow(
    state: &AppState,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<(Response, String), Refusal> {
    let now = state.config.clock.now();
    let proof = dpop::check_proof(state, headers, now)?;
    let authenticated = if client_auth::presented_methods(headers, form).is_empty() {
        None
    } else {
        Some(
            client_auth::authenticate(state, headers, form, now)
                .await?
                .client,
        )
    };
    let Some((_, assertion)) = form.extra.iter().find(|(k, _)| k == "assertion") else {
        return Err(Refusal::from(Rejection::invalid_request(
            Reason::AssertionMissing,
            "the jwt-bearer grant needs the assertion parameter (RFC 7523 §2.1)",
        )));
    };
    let registry = state.registry.current();
    let matched = verify_token(state, &registry, assertion, now)
        .await
        .map_err(invalid_grant)?;
    let client: Arc<Client> = match &matched.trust.grant {
        TrustGrant::Client(id) => registry.get(id).ok_or_else(|| {
            // The registry checks this at load; a reload cannot split the two.
            Refusal::from(Rejection::new(
                400,
                "invalid_grant",
                "the trust rule names a client that is not registered",
                Reason::NoTrustRule,
            ))
        })?,
        TrustGrant::Principal {
            scopes,
            token_audience,
        } => Arc::new(principal(
            &matched.subject,
            scopes,
            token_audience.as_deref(),
        )),
    };
    if let (Some(a), TrustGrant::Client(id)) = (&authenticated, &matched.trust.grant)
        && a.id != *id
    {
        return Err(Refusal::from(Rejection::new(
            400,
            "invalid_grant",
            format!(
                "the assertion's trust rule maps to client {id:?}, not to the authenticated \
                     client"
            ),
            Reason::NoTrustRule,
        ))
        .for_client(&a.id));
    }

    rate_limit(state, &client, now)?;
    record_jti(state, &matched, now)
        .await
        .map_err(invalid_grant)?;
    let jkt = dpop::bind(state, &client, proof, now).await?;
    super::answer(state, &client, form, jkt.as_deref(), now)
}

/// The grant's answer for a refused token: `invalid_grant` (store and rate-limit refusals stay).
fn invalid_grant(refusal: Refusal) -> Refusal {
    Refusal {
        rejection: refusal.rejection.into_invalid_grant(),
        ..refusal
    }
}

/// The principal a `scopes = [...]` rule grants: named by the token's `sub`, with the rule's
/// scopes and access-token audience, the server's lifetime and rate limit.
fn principal(subject: &str, scopes: &[String], audience: Option<&str>) -> Client {
    Client {
        id: subject.to_owned(),
        auth_method: Default::default(),
        keys: crate::registry::ClientKeySource::Unregistered,
        algs: Vec::new(),
        scopes: scopes.to_vec(),
        audience: audience.map(str::to_owned),
        resources: Vec::new(),
        token_lifetime: None,
        rate_limit: None,
        secret_verifiers: Vec::new(),
        hmac_secrets: Vec::new(),
        hmac_algs: Vec::new(),
        dpop: Default::default(),
        line: 0,
    }
}
