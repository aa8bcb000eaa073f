//! The refusal a validator hands back: what the HTTP layer sends and what logs and metrics record.

use std::borrow::Cow;
use std::fmt;

/// Why a request was refused: the HTTP status and RFC 6749 §5.2 body the server sends, plus a
/// machine-readable [`Reason`] for the log and the metrics (which never depend on wording).
///
/// Descriptions never contain the assertion, its signature or any key material; they may name the
/// expected value (e.g. the issuer identifier) because that is public configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status: 400, 401, 403, 413, 415, 429 or 503.
    pub status: u16,
    /// The `error` member: an RFC 6749 code, or NHS's own (`public_key error`).
    pub error: Cow<'static, str>,
    /// The `error_description` member: specific by default (rfc), the exact NHS string (nhs).
    pub description: Cow<'static, str>,
    /// Machine code for logs and metrics labels.
    pub reason: Reason,
}

impl Rejection {
    /// A rejection with any status and `error` code.
    pub fn new(
        status: u16,
        error: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
        reason: Reason,
    ) -> Self {
        Rejection {
            status,
            error: error.into(),
            description: description.into(),
            reason,
        }
    }

    /// 400 `invalid_request`: the request itself is malformed (RFC 6749 §5.2).
    pub fn invalid_request(reason: Reason, description: impl Into<Cow<'static, str>>) -> Self {
        Rejection::new(400, "invalid_request", description, reason)
    }

    /// 401 `invalid_client`: client authentication failed (RFC 6749 §5.2).
    pub fn invalid_client(reason: Reason, description: impl Into<Cow<'static, str>>) -> Self {
        Rejection::new(401, "invalid_client", description, reason)
    }

    /// 400 `unsupported_grant_type` (RFC 6749 §5.2).
    pub fn unsupported_grant_type(description: impl Into<Cow<'static, str>>) -> Self {
        Rejection::new(
            400,
            "unsupported_grant_type",
            description,
            Reason::GrantTypeUnsupported,
        )
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} ({})",
            self.status,
            self.error,
            self.description,
            self.reason.as_str()
        )
    }
}

impl std::error::Error for Rejection {}

/// The machine-readable cause of a [`Rejection`], stable across wording changes and profiles.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The `Content-Type` is not `application/x-www-form-urlencoded` (or has refused parameters).
    MediaType,
    /// Parameters were sent in the query string (RFC 6749 §2.3.1 wants them in the body).
    QueryParams,
    /// A parameter appears more than once (RFC 6749 §3.2).
    DuplicateParam,
    /// The body is not valid `application/x-www-form-urlencoded` (bad `%` escape, not UTF-8).
    FormInvalid,
    /// No `grant_type`.
    GrantTypeMissing,
    /// A `grant_type` other than `client_credentials`.
    GrantTypeUnsupported,
    /// `client_assertion_type` missing or not the RFC 7523 URN.
    AssertionTypeInvalid,
    /// No `client_assertion`.
    AssertionMissing,
    /// The assertion is longer than the configured limit.
    AssertionTooLarge,
    /// The HTTP request body is larger than the server accepts (413), whatever it holds.
    BodyTooLarge,
    /// The request body did not arrive within the server's time limit.
    BodyTimeout,
    /// The assertion is not a compact JWS with JSON header and claims.
    Malformed,
    /// `alg` is missing, `none`, HMAC, unknown, or (nhs) not RS512.
    AlgRefused,
    /// `alg` is a valid algorithm but not one pinned for this client.
    AlgNotAllowed,
    /// The header carries `crit`, which we do not understand (RFC 7515 §4.1.11).
    CritRefused,
    /// No registered client matches `sub`.
    UnknownClient,
    /// The `client_id` form field differs from the assertion's `sub`.
    ClientIdMismatch,
    /// `typ` is not an accepted value.
    TypInvalid,
    /// No `kid` and the client has several keys (or, nhs, no `kid` at all).
    KidMissing,
    /// The `kid` matches none of the client's keys (a server with `jwks_uri` may refetch once).
    UnknownKid,
    /// The client has no keys at all.
    NoKeys,
    /// The client's JWKS could not be fetched.
    JwksUnavailable,
    /// The signature does not verify.
    BadSignature,
    /// `iss`/`sub` missing, different, or not the client id.
    IssSubInvalid,
    /// `aud` missing or not the accepted audience.
    AudInvalid,
    /// No `exp`.
    ExpMissing,
    /// `exp` is not a number.
    ExpInvalid,
    /// `exp` is in the past.
    Expired,
    /// `exp` is further ahead than the maximum lifetime.
    ExpTooFar,
    /// `iat` is not a number.
    IatInvalid,
    /// `iat` is in the future.
    IatFuture,
    /// `nbf` is not a number.
    NbfInvalid,
    /// `nbf` is in the future.
    NbfFuture,
    /// No `jti` (or, nhs, an empty one).
    JtiMissing,
    /// `jti` is not a string, empty, or too long.
    JtiInvalid,
    /// The `jti` was seen before for this client.
    Replayed,
    /// The client exceeded its rate limit.
    RateLimited,
    /// The replay store failed (fail closed).
    StoreUnavailable,
    /// The client may not use this grant (NHS `unauthorized_client`).
    Unauthorized,
    /// A requested scope is not one the client may have (`invalid_scope`, RFC 6749 §5.2).
    ScopeNotAllowed,
    /// Anything else.
    Other,
    /// A client secret (`client_secret_basic`/`client_secret_post`) matches none registered
    /// for the client, or the client is unknown (the two are not told apart on the wire).
    SecretMismatch,
    /// The request authenticates with a method other than the one the client is registered
    /// for.
    MethodNotRegistered,
    /// An `Authorization: Basic` header that does not decode to `id:secret` (RFC 6749 §2.3.1).
    BasicMalformed,
    /// A federated token's `iss` is no trusted issuer (`[[trust]]`).
    UntrustedIssuer,
    /// No `[[trust]]` rule of the token's issuer matches its subject and claims.
    NoTrustRule,
}

impl Reason {
    /// The snake_case name, for metrics labels and structured logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MediaType => "media_type",
            Reason::QueryParams => "query_params",
            Reason::DuplicateParam => "duplicate_param",
            Reason::FormInvalid => "form_invalid",
            Reason::GrantTypeMissing => "grant_type_missing",
            Reason::GrantTypeUnsupported => "grant_type_unsupported",
            Reason::AssertionTypeInvalid => "assertion_type_invalid",
            Reason::AssertionMissing => "assertion_missing",
            Reason::AssertionTooLarge => "assertion_too_large",
            Reason::BodyTooLarge => "body_too_large",
            Reason::BodyTimeout => "body_timeout",
            Reason::Malformed => "malformed",
            Reason::AlgRefused => "alg_refused",
            Reason::AlgNotAllowed => "alg_not_allowed",
            Reason::CritRefused => "crit_refused",
            Reason::UnknownClient => "unknown_client",
            Reason::ClientIdMismatch => "client_id_mismatch",
            Reason::TypInvalid => "typ_invalid",
            Reason::KidMissing => "kid_missing",
            Reason::UnknownKid => "unknown_kid",
            Reason::NoKeys => "no_keys",
            Reason::JwksUnavailable => "jwks_unavailable",
            Reason::BadSignature => "bad_signature",
            Reason::IssSubInvalid => "iss_sub_invalid",
            Reason::AudInvalid => "aud_invalid",
            Reason::ExpMissing => "exp_missing",
            Reason::ExpInvalid => "exp_invalid",
            Reason::Expired => "expired",
            Reason::ExpTooFar => "exp_too_far",
            Reason::IatInvalid => "iat_invalid",
            Reason::IatFuture => "iat_future",
            Reason::NbfInvalid => "nbf_invalid",
            Reason::NbfFuture => "nbf_future",
            Reason::JtiMissing => "jti_missing",
            Reason::JtiInvalid => "jti_invalid",
            Reason::Replayed => "replayed",
            Reason::RateLimited => "rate_limited",
            Reason::StoreUnavailable => "store_unavailable",
            Reason::Unauthorized => "unauthorized",
            Reason::ScopeNotAllowed => "scope_not_allowed",
            Reason::Other => "other",
            Reason::SecretMismatch => "secret_mismatch",
            Reason::MethodNotRegistered => "method_not_registered",
            Reason::BasicMalformed => "basic_malformed",
            Reason::UntrustedIssuer => "untrusted_issuer",
            Reason::NoTrustRule => "no_trust_rule",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
