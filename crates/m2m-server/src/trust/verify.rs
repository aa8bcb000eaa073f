//! One federated token through the checks, shared by the jwt-bearer grant (`token/jwt_bearer.rs`,
//! which answers `invalid_grant`) and federated client authentication (`client_auth`, which
//! answers `invalid_client`): core's prechecks → trusted issuer → its keys (bounded wait) →
//! signature → the first entry of the issuer whose subject and claim rules match → core's claim
//! checks under that entry's policy. The `jti` record ([`record_jti`]) comes after the caller's
//! rate limit, as for client assertions.

use std::sync::Arc;

use m2m_core::clock::UnixTime;
use m2m_core::validate::{FederatedVerified, Reason, Rejection, TrustPolicy};

use super::{Reuse, Trust};
use crate::refusal::{Refusal, store_unavailable};
use crate::registry::Registry;
use crate::state::AppState;

/// A federated token that passed every check, and the entry it matched.
#[derive(Debug)]
pub(crate) struct Matched {
    /// The `[[trust]]` entry.
    pub(crate) trust: Arc<Trust>,
    /// The token's `sub`.
    pub(crate) subject: String,
    /// What the claim checks handed back (`jti`, `exp`).
    pub(crate) verified: FederatedVerified,
}

/// Whether `token` is from a trusted issuer that is not also a registered client's id (whose
/// own assertions take the `private_key_jwt` path). `false` for anything else, including tokens
/// that do not parse: the ordinary client-assertion checks then answer. Free when no issuer is
/// trusted.
pub(crate) fn trusted_issuer_of(state: &AppState, registry: &Registry, token: &str) -> bool {
    if registry.trusts().is_empty() {
        return false;
    }
    match state.rfc.precheck_federated(token) {
        Ok(pending) => {
            registry.get(pending.issuer()).is_none()
                && registry
                    .trusts()
                    .iter()
                    .any(|t| t.issuer == pending.issuer())
        }
        Err(_) => false,
    }
}

/// The checks, in order. Refusals are 401 `invalid_client` with a precise description; the
/// grant turns them into `invalid_grant`.
pub(crate) async fn verify_token(
    state: &AppState,
    registry: &Registry,
    token: &str,
    now: UnixTime,
) -> Result<Matched, Refusal> {
    let pending = state.rfc.precheck_federated(token)?;
    let entries = registry.trusts_of(pending.issuer());
    let Some(first) = entries.first() else {
        return Err(Refusal::from(Rejection::invalid_client(
            Reason::UntrustedIssuer,
            format!(
                "the assertion's issuer {} is not trusted by this server (no [[trust]] entry)",
                shown(pending.issuer())
            ),
        )));
    };
    let keys = match super::keys::issuer_keys(state, first, pending.kid()).await {
        Ok(keys) => keys,
        Err(why) => {
            state.metrics.jwks_fetch_error();
            tracing::warn!(issuer = %first.issuer, error = %why, "trusted issuer's keys unavailable");
            return Err(Refusal::from(Rejection::invalid_client(
                Reason::JwksUnavailable,
                format!(
                    "the keys of issuer {} are unavailable, so its token cannot be checked; \
                     retry later",
                    shown(&first.issuer)
                ),
            )));
        }
    };
    let signed = state
        .rfc
        .verify_federated_signature(pending, keys.as_slice())?;
    let Some(trust) = entries
        .iter()
        .find(|t| t.matches(signed.subject(), signed.claims()))
    else {
        return Err(Refusal::from(Rejection::invalid_client(
            Reason::NoTrustRule,
            format!(
                "no [[trust]] rule of issuer {} matches subject {} and its claims",
                shown(signed.issuer()),
                shown(signed.subject())
            ),
        )));
    };
    let default_audiences;
    let audiences = if trust.audiences.is_empty() {
        default_audiences = [state.issuer.clone(), state.token_url.clone()];
        &default_audiences[..]
    } else {
        &trust.audiences[..]
    };
    let policy = TrustPolicy {
        audiences,
        max_lifetime: trust.max_lifetime,
        jti_required: trust.reuse == Reuse::SingleUse,
    };
    let verified = state.rfc.check_federated_claims(&signed, &policy, now)?;
    Ok(Matched {
        trust: Arc::clone(trust),
        subject: signed.subject().to_owned(),
        verified,
    })
}

/// Records a single-use token's `jti` until `exp` + leeway, per issuer (a replay is refused, a
/// store failure is a 503). A trust that allows reuse records nothing.
pub(crate) async fn record_jti(
    state: &AppState,
    matched: &Matched,
    now: UnixTime,
) -> Result<(), Refusal> {
    let (Reuse::SingleUse, Some(jti)) = (matched.trust.reuse, &matched.verified.jti) else {
        return Ok(());
    };
    let until = matched.verified.exp.add(state.rfc.config().leeway());
    // Namespaced by issuer: two issuers may mint the same `jti`, and no client id starts so.
    let key = format!("trust:{}", matched.trust.issuer);
    match state.replay.insert_if_absent(&key, jti, until, now).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Refusal::from(Rejection::invalid_client(
            Reason::Replayed,
            "the assertion's 'jti' was already used: this issuer's tokens are single use \
             (reuse = \"single-use\")",
        ))),
        Err(e) => Err(store_unavailable(state, &e)),
    }
}

/// An unauthenticated claim as a description shows it: JSON-quoted, at most 200 characters.
fn shown(value: &str) -> String {
    let quoted = serde_json::Value::from(value).to_string();
    match quoted.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &quoted[..cut]),
        None => quoted,
    }
}
