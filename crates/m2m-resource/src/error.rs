//! Why a request was refused: [`Refusal`], with the RFC 6750 error it is sent as. Descriptions
//! never contain the token.

use std::borrow::Cow;

use m2m_core::validate::{
    AccessTokenReason, AccessTokenRejection, BearerError, DpopReason, DpopRejection,
};

/// A refused request or token.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No credential at all: 401 with a challenge but no error code (RFC 6750 §3.1).
    #[error("no access token")]
    NoToken,
    /// The request carrying the token is malformed (two credentials, a token in the query
    /// string, a broken `Authorization` header): 400 `invalid_request`.
    #[error("invalid request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// The token failed a check of the access-token check order.
    #[error("{0}")]
    Token(AccessTokenRejection),
    /// The issuer's keys (or its introspection endpoint) could not be had: the token cannot be
    /// checked, so it is refused (401 `invalid_token`), never waved through.
    #[error("cannot verify the token: {0}")]
    Unavailable(String),
    /// The DPoP proof was refused (RFC 9449 §7.1): 401 with `error` `invalid_dpop_proof`
    /// (`invalid_token` when the proof's key is not the one the token is bound to).
    #[error("{0}")]
    Proof(DpopRejection),
    /// This resource accepts DPoP-bound tokens only and a Bearer token came: 401
    /// `invalid_token` with the DPoP challenge.
    #[error("this resource requires DPoP-bound tokens")]
    DpopRequired,
    /// The DPoP replay store could not answer, so a replay cannot be ruled out: 503, never
    /// waved through.
    #[error("cannot check the DPoP proof for replay: {0}")]
    ReplayUnavailable(String),
}

impl Refusal {
    /// The RFC 6750 error class, or `None` for [`Refusal::NoToken`] and
    /// [`Refusal::ReplayUnavailable`]. DPoP refusals are in the `invalid_token` class (401);
    /// their own code is [`Refusal::error_code`].
    pub fn bearer_error(&self) -> Option<BearerError> {
        match self {
            Refusal::NoToken | Refusal::ReplayUnavailable(_) => None,
            Refusal::InvalidRequest(_) => Some(BearerError::InvalidRequest),
            Refusal::Token(r) => Some(r.bearer_error()),
            Refusal::Unavailable(_) | Refusal::Proof(_) | Refusal::DpopRequired => {
                Some(BearerError::InvalidToken)
            }
        }
    }

    /// The `error` sent in the challenge and body: RFC 6750's codes, RFC 9449's
    /// `invalid_dpop_proof` (or `use_dpop_nonce`), `temporarily_unavailable` for a replay store
    /// that cannot answer; `None` for [`Refusal::NoToken`].
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Refusal::Proof(r) => Some(r.error_code()),
            Refusal::ReplayUnavailable(_) => Some("temporarily_unavailable"),
            other => other.bearer_error().map(BearerError::code),
        }
    }

    /// The HTTP status: 400, 401, 403 or 503.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::ReplayUnavailable(_) => 503,
            other => other.bearer_error().map_or(401, BearerError::status),
        }
    }

    /// The DPoP rule that refused the proof, if the proof was refused.
    pub fn dpop_reason(&self) -> Option<DpopReason> {
        match self {
            Refusal::Proof(r) => Some(r.reason),
            _ => None,
        }
    }

    /// The rule that refused, by name, for logs and metrics (access-token or DPoP rule).
    pub fn reason_name(&self) -> Option<&'static str> {
        match self {
            Refusal::Token(r) => Some(r.reason.as_str()),
            Refusal::Proof(r) => Some(r.reason.as_str()),
            Refusal::DpopRequired => Some("dpop_required"),
            _ => None,
        }
    }

    /// The access-token rule that refused, if the token itself was refused.
    pub fn reason(&self) -> Option<AccessTokenReason> {
        match self {
            Refusal::Token(r) => Some(r.reason),
            _ => None,
        }
    }

    /// A short description for `error_description` (no token, no upstream detail).
    pub fn description(&self) -> Cow<'_, str> {
        match self {
            Refusal::NoToken => Cow::Borrowed("no access token"),
            Refusal::InvalidRequest(d) => Cow::Borrowed(d),
            Refusal::Token(r) => Cow::Borrowed(&r.description),
            Refusal::Unavailable(_) => Cow::Borrowed("the token issuer's keys are unavailable"),
            Refusal::Proof(r) => Cow::Borrowed(&r.description),
            Refusal::DpopRequired => Cow::Borrowed(
                "this resource requires DPoP-bound tokens: send Authorization: DPoP with a DPoP proof",
            ),
            Refusal::ReplayUnavailable(_) => {
                Cow::Borrowed("the DPoP proof cannot be checked for replay right now")
            }
        }
    }

    /// A token refusal for `reason`.
    pub(crate) fn token(
        reason: AccessTokenReason,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Refusal::Token(AccessTokenRejection {
            reason,
            description: description.into(),
        })
    }
}

impl From<AccessTokenRejection> for Refusal {
    fn from(r: AccessTokenRejection) -> Self {
        Refusal::Token(r)
    }
}
