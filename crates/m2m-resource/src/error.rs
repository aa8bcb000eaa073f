//! Why a request was refused: [`Refusal`], with the RFC 6750 error it is sent as. Descriptions
//! never contain the token.

use std::borrow::Cow;

use m2m_core::validate::{AccessTokenReason, AccessTokenRejection, BearerError};

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
}

impl Refusal {
    /// The RFC 6750 error, or `None` for [`Refusal::NoToken`].
    pub fn bearer_error(&self) -> Option<BearerError> {
        match self {
            Refusal::NoToken => None,
            Refusal::InvalidRequest(_) => Some(BearerError::InvalidRequest),
            Refusal::Token(r) => Some(r.bearer_error()),
            Refusal::Unavailable(_) => Some(BearerError::InvalidToken),
        }
    }

    /// The HTTP status: 400, 401 or 403.
    pub fn status(&self) -> u16 {
        self.bearer_error().map_or(401, BearerError::status)
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
