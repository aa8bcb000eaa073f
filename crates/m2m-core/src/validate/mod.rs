//! The validators (client assertions at the token endpoint, RFC 9068 access tokens at a resource
//! server) and the linter behind `m2m decode --lint`: pure functions of the request and an
//! injected time, no I/O.
//!
//! # Layout
//!
//! - [`form`](parse_token_form): the token request body (media type, query, duplicates, decoding).
//! - [`RfcValidator`]: the generic RFC 7523 / RFC 10070 profile, in the order of `docs/protocol.md`
//!   (`## Client assertion checks (rfc profile)`).
//! - [`RfcValidator::precheck_secret_jwt`] / [`RfcValidator::verify_secret_jwt`]: `client_secret_jwt`,
//!   the rfc order with an HMAC under the client's secret in place of the signature.
//! - [`nhs`]: the NHS England emulation profile ([`NhsValidator`]), in the proxy's order
//!   (`docs/nhs-token-endpoint.md`) with its exact strings ([`nhs::messages`]).
//! - [`access_token`]: the RFC 9068 access-token validator for resource servers and introspection.
//! - [`dpop`]: the RFC 9449 DPoP proof validator (token endpoint and resource servers), with
//!   `htu` compared after RFC 3986 normalisation (`htu`).
//! - [`federated`](RfcValidator::precheck_federated): another issuer's workload token (Kubernetes,
//!   SPIFFE, GitHub Actions) as the jwt-bearer grant or a federated client assertion, under one
//!   trusted issuer's [`TrustPolicy`].
//! - [`Verified`]: what both client-assertion profiles hand back.
//! - [`lint`]: all findings of either profile at once.
//! - [`Rejection`] / [`Reason`]: what a refusal sends and what logs and metrics record.
//!
//! Each rule is one small function, written once and run both by a validator (first failure wins)
//! and by [`lint`] (every failure reported).
//!
//! # How a server drives it (rfc profile)
//!
//! ```text
//! form     = parse_token_form(content_type, query, body, strict)?
//! pending  = validator.precheck(&form)?                  // no I/O: check_grant + authenticate_client
//! client   = registry.get(pending.subject())  else validator.unknown_client()
//! keys     = client keys (fetch jwks_uri; on Reason::UnknownKid refetch once and retry verify)
//! verified = validator.verify(&pending, &client_keys, now)?
//! store.insert_if_absent(client_id, jti, until exp + leeway)  else validator.replayed()
//! ```

pub mod access_token;
pub mod dpop;
mod federated;
mod form;
mod htu;
mod lint;
pub mod nhs;
mod rejection;
mod rfc;
mod rules;
mod secret_jwt;

pub use crate::wire::GRANT_CLIENT_CREDENTIALS;
pub use access_token::{
    AccessTokenClaims, AccessTokenConfig, AccessTokenReason, AccessTokenRejection,
    AccessTokenValidator, BearerError, Presentation, UnsignedAccessToken,
};
pub use dpop::{DpopConfig, DpopReason, DpopRejection, DpopRequest, DpopValidator, VerifiedProof};
pub use federated::{FederatedPending, FederatedSigned, FederatedVerified, TrustPolicy};
pub use form::{FORM_MEDIA_TYPE, TokenForm, parse_token_form};
pub use lint::{Finding, LintContext, LintProfile, lint};
pub use nhs::{
    NHS_MAX_EXP_AHEAD_SECS, NHS_TIME_ALLOWANCE_SECS, NhsConfig, NhsPending, NhsValidator,
    PUBLIC_KEY_ERROR,
};
pub use rejection::{Reason, Rejection};
pub use rfc::{
    AudienceMode, ClientKeys, DEFAULT_MAX_ASSERTION_LEN, DEFAULT_MAX_JTI_LEN, MAX_LEEWAY, Pending,
    RfcConfig, RfcValidator,
};
pub use secret_jwt::{ClientSecrets, SecretJwtPending, assertion_is_hmac};

use crate::clock::UnixTime;
use crate::ids::ClientId;

/// An authenticated client assertion, the output of both profiles' `verify` (here, not in one
/// profile's file, because both produce it). The caller still has to record `(client_id, jti)` in its
/// replay store until `exp` + leeway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The authenticated client.
    pub client_id: ClientId,
    /// The assertion's `jti`.
    pub jti: String,
    /// The assertion's `exp`.
    pub exp: UnixTime,
    /// The `scope` form parameter, if any.
    pub scope: Option<String>,
}
