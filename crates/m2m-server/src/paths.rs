//! The URL paths the server answers on, written once: the router, the metadata document, the
//! URLs [`crate::RunningServer`] reports and the tests all use these.

/// The token endpoint (RFC 6749 §3.2).
pub const TOKEN_PATH: &str = "/oauth2/token";

/// The authorization endpoint named in the metadata; it refuses every request (no user-facing
/// grants exist here), see `authorize.rs`.
pub const AUTHORIZE_PATH: &str = "/oauth2/authorize";
/// The introspection endpoint (RFC 7662).
pub const INTROSPECT_PATH: &str = "/oauth2/introspect";

/// The server's public keys, for resource servers verifying its access tokens.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The authorization server metadata (RFC 8414 §3).
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
