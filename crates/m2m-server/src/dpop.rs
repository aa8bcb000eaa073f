//! DPoP (RFC 9449) at the token endpoint, rfc profile: the per-client policy ([`DpopPolicy`]) and
//! the checks that decide whether a token is bound to the client's key (docs/dpop.md, "Server").
//!
//! The order, inside the token flow:
//! 1. [`check_proof`], before client authentication: at most one `DPoP` header, and the proof
//!    passes core's validator (`htm` POST, `htu` the external token URL, `iat` window, algorithm
//!    allow-list, server nonce when `--dpop-nonce` is on). Stateless, so a refused proof (e.g. a
//!    missing nonce) burns neither the client assertion's `jti` nor a store write.
//! 2. [`bind`], after client authentication: a `required` client without a proof is refused, and
//!    the proof's `(jkt, jti)` is recorded in the replay store (in its own key space) until the
//!    `iat` window has passed; a replay is refused.
//!
//! The NHS profile never comes here: NHS has no DPoP, so its flow ignores the header.

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use m2m_core::clock::UnixTime;
use m2m_core::validate::{
    DpopReason, DpopRejection, DpopRequest, DpopValidator, Reason, Rejection, VerifiedProof,
};

use crate::dpop_nonce::NonceSource;
use crate::refusal::{Refusal, store_unavailable};
use crate::registry::Client;
use crate::state::AppState;

/// The header a proof travels in.
pub(crate) const DPOP_HEADER: &str = "dpop";
/// The header the server's current nonce travels in (RFC 9449 §8).
pub(crate) const DPOP_NONCE_HEADER: &str = "dpop-nonce";

/// Whether a client's access tokens must be DPoP-bound: the registry's `dpop` (or RFC 9449 §5.2
/// `dpop_bound_access_tokens = true`, which means `required`).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DpopPolicy {
    /// A request with a valid proof gets a bound token (`token_type: DPoP`), one without a
    /// `Bearer` token.
    #[default]
    Allowed,
    /// Every token request must carry a valid proof; without one it is refused
    /// (`400 invalid_dpop_proof`).
    Required,
}

impl DpopPolicy {
    /// The name written in the registry and taken by `m2m clients add --dpop`.
    pub fn name(self) -> &'static str {
        match self {
            DpopPolicy::Allowed => "allowed",
            DpopPolicy::Required => "required",
        }
    }
}

impl std::fmt::Display for DpopPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DpopPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allowed" => Ok(DpopPolicy::Allowed),
            "required" => Ok(DpopPolicy::Required),
            other => Err(format!(
                "unknown DPoP policy {other:?} (expected `required` or `allowed`)"
            )),
        }
    }
}

/// The token endpoint's DPoP settings: the validator and, with `--dpop-nonce`, the nonces.
#[derive(Debug)]
pub(crate) struct TokenEndpointDpop {
    pub(crate) validator: DpopValidator,
    pub(crate) nonces: Option<NonceSource>,
}

/// Step 1: the request's proof, if it has one, validated against the token endpoint. `Ok(None)`:
/// no `DPoP` header.
pub(crate) fn check_proof(
    state: &AppState,
    headers: &HeaderMap,
    now: UnixTime,
) -> Result<Option<VerifiedProof>, Refusal> {
    let mut values = headers.get_all(DPOP_HEADER).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid_proof(
            "more than one DPoP header: send exactly one proof (RFC 9449 §4.3)".to_owned(),
        ));
    }
    let Ok(proof) = first.to_str() else {
        return Err(invalid_proof(
            "the DPoP header is not a compact JWS (non-ASCII bytes)".to_owned(),
        ));
    };
    let accepted = state.dpop.nonces.as_ref().map(|n| n.accepted(now));
    let nonces: Vec<&str> = accepted
        .iter()
        .flat_map(|a| [a.current.as_str(), a.previous.as_str()])
        .collect();
    let request = DpopRequest::new("POST", &state.token_url).nonces(&nonces);
    state
        .dpop
        .validator
        .validate(proof, &request, now)
        .map(Some)
        .map_err(refused)
}

/// Step 2, after client authentication: the client's policy, then the proof's `jti` recorded
/// once. Returns the thumbprint the token is bound to, if any.
pub(crate) async fn bind(
    state: &AppState,
    client: &Client,
    proof: Option<VerifiedProof>,
    now: UnixTime,
) -> Result<Option<String>, Refusal> {
    let Some(proof) = proof else {
        if client.dpop == DpopPolicy::Required {
            return Err(invalid_proof(
                "this client must use DPoP (its registry entry says dpop = \"required\"): send a \
                 DPoP proof for POST to the token URL in the DPoP header"
                    .to_owned(),
            )
            .for_client(&client.id));
        }
        return Ok(None);
    };
    match state
        .replay
        .insert_proof_if_absent(&proof.jkt, &proof.jti, proof.replay_until, now)
        .await
    {
        Ok(true) => Ok(Some(proof.jkt)),
        Ok(false) => Err(invalid_proof(
            "the DPoP proof's jti was already used: make a fresh proof for every request"
                .to_owned(),
        )
        .for_client(&client.id)),
        Err(e) => Err(store_unavailable(state, &e).for_client(&client.id)),
    }
}

/// With `--dpop-nonce`, every rfc-profile token-endpoint answer carries the current nonce in
/// `DPoP-Nonce` (refusals included: a client keeps its nonce current without an extra round).
pub(crate) fn add_nonce_header(state: &AppState, response: &mut Response) {
    if let Some(nonces) = &state.dpop.nonces {
        let current = nonces.accepted(state.config.clock.now()).current;
        if let Ok(value) = HeaderValue::from_str(&current) {
            response.headers_mut().insert(DPOP_NONCE_HEADER, value);
        }
    }
}

/// A refusal from core's validator: its `error` (`invalid_dpop_proof`, or `use_dpop_nonce` for
/// a missing or stale nonce) and description, always 400 at the token endpoint (RFC 9449 §5).
fn refused(rejection: DpopRejection) -> Refusal {
    let nonce = matches!(
        rejection.reason,
        DpopReason::NonceMissing | DpopReason::NonceMismatch
    );
    let description = if nonce {
        format!(
            "{} (retry with the nonce in the DPoP-Nonce header)",
            rejection.description
        )
    } else {
        format!("{} ({})", rejection.description, rejection.reason.as_str())
    };
    Refusal::from(Rejection::new(
        400,
        rejection.error_code(),
        description,
        Reason::Other,
    ))
}

fn invalid_proof(description: String) -> Refusal {
    Refusal::from(Rejection::new(
        400,
        "invalid_dpop_proof",
        description,
        Reason::Other,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_round_trip_and_default_is_allowed() {
        for p in [DpopPolicy::Allowed, DpopPolicy::Required] {
            assert_eq!(p.name().parse::<DpopPolicy>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(DpopPolicy::default(), DpopPolicy::Allowed);
        let err = "Required".parse::<DpopPolicy>().unwrap_err();
        assert!(err.contains("required"), "{err}");
    }

    #[test]
    fn nonce_refusals_keep_their_error_code() {
        let r = refused(DpopRejection {
            reason: DpopReason::NonceMissing,
            description: "no nonce".into(),
        });
        assert_eq!(r.rejection.error, "use_dpop_nonce");
        assert_eq!(r.rejection.status, 400);
        let r = refused(DpopRejection {
            reason: DpopReason::HtuMismatch,
            description: "wrong htu".into(),
        });
        assert_eq!(r.rejection.error, "invalid_dpop_proof");
        assert!(r.rejection.description.contains("htu_mismatch"));
    }
}
