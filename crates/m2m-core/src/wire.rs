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
/// The `typ` of DPoP proofs (RFC 9449 §4.2).
pub const DPOP_TYP: &str = "dpop+jwt";
/// The HTTP header that carries a DPoP proof (RFC 9449 §4.1), and the `Authorization` scheme of
/// a DPoP-bound access token (§7.1) and its `token_type` (§5).
pub const DPOP: &str = "DPoP";
/// The header in which a server hands the client a nonce to put in its next proofs (RFC 9449 §8).
pub const DPOP_NONCE_HEADER: &str = "DPoP-Nonce";
/// The `error` of a refusal that asks for a proof with the server's nonce (RFC 9449 §8, §9).
pub const ERROR_USE_DPOP_NONCE: &str = "use_dpop_nonce";
/// The `error` of a refused DPoP proof (RFC 9449 §5, §7.1).
pub const ERROR_INVALID_DPOP_PROOF: &str = "invalid_dpop_proof";
