//! Wire constants of the OAuth protocols m2m speaks, each written once: the client, the server,
//! the validator, the CLI and the tests all name these, so a typo cannot make the two halves
//! disagree.

use std::time::Duration;

/// The grant of machine-to-machine calls (RFC 6749 §4.4).
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
/// The JWT bearer grant (RFC 7523 §2.1): a JWT presented as the grant itself.
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The `client_assertion_type` for JWT client authentication (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The media type of every token and introspection request, bare: NHS answers 415 to anything
/// else, a `; charset=…` suffix included, so the client never adds one (the server accepts one).
pub const FORM_MEDIA_TYPE: &str = "application/x-www-form-urlencoded";
/// The longest client-assertion lifetime accepted without a `dangerous_` override, on both sides
/// (NHS: 5 minutes).
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// The `typ` of RFC 9068 JWT access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
