//! m2m-client: get OAuth 2.0 access tokens with the client-credentials grant and a signed JWT
//! client assertion (RFC 7523 `private_key_jwt`), ready for the NHS England API platform and any
//! other server that speaks it.
//!
//! # Example: a token from NHS INT
//!
//! ```no_run
//! use std::sync::Arc;
//! use m2m_client::{Algorithm, Environment, KeySigner, PrivateKey, TokenClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let key = Arc::new(PrivateKey::from_bytes(&std::fs::read("int-1.pem")?, None, None)?);
//! let signer = KeySigner::new(key, Algorithm::Rs512, Some("int-1".into()))?;
//! let client = TokenClient::builder()
//!     .nhs(Environment::Int) // token URL, aud = token URL, RS512 + kid enforced
//!     .client_id("your-api-key")
//!     .signer(Arc::new(signer))
//!     .build()?;
//! let token = client.fetch().await?;
//! println!("expires in {:?}", token.expires_in()); // the token's Debug is [redacted]
//! # let _ = token.access_token().secret();
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`authorization`]: the headers of an API request with a token (`Bearer`, or `DPoP` with a
//!   fresh proof carrying `ath`), the per-origin DPoP nonces and the nonce-retry rule every
//!   integration and the CLI follow.
//! - [`TokenClient`] (`client`): the builder, one `fetch` call, retries with fresh credentials
//!   per attempt.
//! - [`ClientAuth`] (`client_auth`): how the client authenticates (`private_key_jwt`, the three
//!   client-secret methods): the form fields and headers of one attempt.
//! - [`assertion_source`]: federated workload credentials — the [`AssertionSource`] trait and
//!   its file, command, environment and GitHub Actions sources, whose JWT goes out as the client
//!   assertion or as the jwt-bearer grant ([`ClientAuth::FederatedAssertion`],
//!   [`ClientAuth::JwtBearerGrant`]).
//! - [`DpopKey`] (`dpop`): the DPoP key (ephemeral or from a file) whose proofs go on every token
//!   request, and the token endpoint's latest nonce (RFC 9449).
//! - [`Endpoint`] (`endpoint`): a token URL, an NHS environment or discovered metadata, and
//!   the default `aud` and profile each implies.
//! - [`TokenUrl`] (`token_url`): the https-only rule (loopback http allowed, anything else only
//!   through `dangerous_allow_insecure_http`).
//! - [`Profile`] (`profile`): NHS rules (RS512, kid, `aud` = exact token URL) as
//!   [`SignerFinding`]s, and algorithm choice.
//! - [`discover`] (`discovery`): RFC 8414 metadata, issuer checked exactly, `aud` = issuer.
//! - [`discover_from_resource`] (`resource_discovery`): the MCP flow from a resource URL (RFC 9728
//!   challenge or well-known metadata, `resource` check, issuer pinning, then RFC 8414).
//! - [`TokenResponse`] (`response`): success and error bodies, NHS's string-typed numbers.
//! - [`Error`] and [`ErrorResponse`] (`error`), [`Hint`] (`hint`): what failed (the server's
//!   refusal as a struct, shown with control characters escaped), whether to retry, what to do.
//! - [`RetryPolicy`] (`retry`): bounded exponential backoff, full jitter, `Retry-After`; the
//!   backoff arithmetic itself (`backoff`) is shared with the token source's refresh retries.
//! - [`TokenTransport`] (`transport`) and [`ReqwestTransport`] (`reqwest_transport`): the HTTP
//!   seam (a [`FormPost`] carries the form and the authentication's headers) and its default;
//!   [`error_chain`] turns an error's source chain into one line.
//! - [`source`]: `TokenSource`, the shared cache for long-running services (refresh-ahead,
//!   single flight) over a [`TokenClient`].
//! - [`integrations`]: putting the cached token on outgoing requests (reqwest-middleware, tower,
//!   blocking), each behind a cargo feature.
//! - [`file_cache`]: a token cache on disk (used by `m2m token`), keyed by token URL, client id,
//!   authentication method, kid and scope.
//! - Re-exports from `m2m-core` of what a client program names (keys, signer, algorithm, NHS
//!   environment, clock), and the whole crate as [`core`], so `m2m-client` is the one
//!   dependency a client needs.
//!
//! # Redirects are never followed
//!
//! The token request carries a signed client assertion that any recipient can replay until it
//! expires. Following a redirect would send it to whichever host the response names, so the
//! default transport disables redirects, and a custom [`TokenTransport`] must too. A 3xx answer
//! is returned as an error.
//!
//! # Logging
//!
//! The client emits `tracing` events (request sent with its `jti`, retries with their delay and
//! reason, token received with its lifetime). Assertions, tokens and keys never appear in events,
//! errors or `Debug` output.
#![forbid(unsafe_code)]
// Unit tests may unwrap: a panic there is a test failure with a useful message.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod assertion_source;
pub mod authorization;
mod backoff;
mod client;
mod client_auth;
mod discovery;
mod dpop;
mod endpoint;
mod error;
pub mod file_cache;
mod hint;
pub mod integrations;
mod profile;
mod reqwest_transport;
mod resource_discovery;
mod response;
mod retry;
pub mod source;
mod token_url;
mod transport;

/// The library guide (`docs/library.md`), here so its examples are compiled by `cargo test --doc`.
#[cfg(all(
    feature = "reqwest-middleware",
    feature = "tower",
    feature = "blocking"
))]
#[doc = include_str!("../../../docs/library.md")]
pub mod guide {}

/// The README, so its Rust example is compiled by `cargo test --doc` too.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme {}

/// The whole of `m2m-core` (keys, JWK/JWKS, the assertion builder, validators), for what the
/// re-exports below do not cover.
pub use m2m_core as core;
/// What a client program names from `m2m-core`, so that `m2m-client` alone is enough to build a
/// client (docs/library.md lists a program's whole `[dependencies]`).
pub use m2m_core::{
    alg::Algorithm,
    clock::{Clock, SystemClock},
    key::PrivateKey,
    nhs::Environment,
    signer::{KeySigner, Signer},
};

/// The DPoP guide (`docs/dpop.md`), here so its examples are compiled by `cargo test --doc`.
#[doc = include_str!("../../../docs/dpop.md")]
// Its ```sh no-run blocks are for the docs test (crates/m2m-cli/tests/docs_recipes.rs), not Rust.
#[allow(rustdoc::invalid_codeblock_attributes)]
pub mod dpop_guide {}

pub use assertion_source::{AssertionSource, AssertionSourceError, FederatedAssertion};
pub use client::{TokenClient, TokenClientBuilder};
pub use client_auth::{AuthParts, ClientAuth};
pub use discovery::{AuthServerMetadata, discover, discover_with, metadata_urls, parse_metadata};
pub use dpop::DpopKey;
pub use endpoint::Endpoint;
pub use error::{ConfigError, Error, ErrorResponse, TransportKind};
pub use hint::{Hint, hint_for};
pub use profile::{Profile, SignerFinding};
pub use reqwest_transport::{ReqwestTransport, TransportConfig, error_chain};
pub use resource_discovery::{
    ResourceDiscovery, discover_from_resource, discover_from_resource_with, resource_metadata_param,
};
pub use response::{AccessToken, RefreshToken, ResponseParts, TokenResponse, parse_response};
pub use retry::{RetryDecision, RetryPolicy, parse_retry_after};
pub use token_url::{TokenUrl, UrlPolicy};
pub use transport::{
    BoxFuture, FORM_CONTENT_TYPE, FormPost, TokenTransport, TransportError, TransportResponse,
};
