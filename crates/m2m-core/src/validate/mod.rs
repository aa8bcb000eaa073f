//! The client-assertion validator (server side) and the linter behind `m2m decode --lint`: pure
//! functions of the request and an injected time, no I/O.
//!
//! # Layout
//!
//! - [`form`](parse_token_form): the token request body (media type, query, duplicates, decoding).
//! - [`RfcValidator`]: the generic RFC 7523 / RFC 10070 profile, in SPEC §4 order.
//! - [`NhsValidator`]: the NHS England emulation profile, in the proxy's order with its exact strings.
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
//! pending  = validator.precheck(&form)?                  // no I/O
//! client   = registry.get(pending.subject())  else validator.unknown_client()
//! keys     = client keys (fetch jwks_uri; on Reason::UnknownKid refetch once and retry verify)
//! verified = validator.verify(&pending, &client_keys, now)?
//! store.insert_if_absent(client_id, jti, until exp + leeway)  else validator.replayed()
//! ```

mod form;
mod lint;
mod nhs;
mod rejection;
mod rfc;
mod rules;

pub use form::{FORM_MEDIA_TYPE, TokenForm, parse_token_form};
pub use lint::{Finding, LintContext, LintProfile, lint};
pub use nhs::{
    NHS_MAX_EXP_AHEAD_SECS, NHS_TIME_ALLOWANCE_SECS, NhsConfig, NhsPending, NhsValidator,
    PUBLIC_KEY_ERROR, messages as nhs_messages,
};
pub use rejection::{Reason, Rejection};
pub use rfc::{
    AudienceMode, ClientKeys, GRANT_CLIENT_CREDENTIALS, JWT_BEARER_ASSERTION_TYPE,
    OPAQUE_DESCRIPTION, Pending, RfcConfig, RfcValidator, Verified,
};
