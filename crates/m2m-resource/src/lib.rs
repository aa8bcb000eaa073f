//! m2m-resource: verifying OAuth 2.0 access tokens in an API — the third party of an m2m call.
//!
//! The checks themselves are m2m-core's ([`m2m_core::validate::AccessTokenValidator`], one rule
//! in one place, in the order of the repository's `docs/protocol.md`, `## Access-token checks`);
//! keys and metadata come through m2m-discovery's one fetching policy. This crate adds what sits
//! around them in a server: trusted issuers with keys that never block a request on a download,
//! a verified-token cache, introspection for opaque tokens, RFC 6750 challenges, RFC 9728
//! metadata, a tower layer and an axum extractor. See `docs/resource.md`.
//!
//! # Layout
//!
//! - [`verifier`]: [`Verifier`] and its builder (issuers, audience, algorithms, leeway, `typ`,
//!   cache, introspection): a token in, a [`Caller`] or a [`Refusal`] out.
//! - [`keys`]: [`TrustedIssuer`] and one issuer's key snapshot (background recheck, unknown-kid
//!   refetch through the fetcher's single flight).
//! - [`cache`] (private): the verified-token cache (SHA-256 key, min(`exp`, bound), bounded,
//!   dropped with its key).
//! - [`introspect`]: RFC 7662 for opaque tokens ([`Introspection`]).
//! - [`layer`]: [`RequireBearerLayer`] (tower), per-route scopes, token extraction.
//! - [`identity`]: [`Caller`], the verified identity and axum extractor.
//! - [`dpop`]: DPoP-bound tokens (RFC 9449): [`DpopSettings`] (mode `bearer` / `allowed` /
//!   `required`, external URL, replay store), the pure header reading, the proof replay stores.
//! - [`challenge`]: RFC 6750 / RFC 9449 `WWW-Authenticate` responses ([`Challenge`]).
//! - [`metadata`]: RFC 9728 protected-resource metadata ([`ResourceMetadata`]) and its router.
//! - [`error`]: why a request was refused, as a [`Refusal`].
//!
//! # Example: protect an axum API
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use m2m_resource::{Caller, RequireBearerLayer, ResourceMetadata, TrustedIssuer, Verifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder("https://api.example.com")
//!     .issuer(TrustedIssuer::discover("https://auth.example.com"))
//!     .build()?;
//! let metadata = ResourceMetadata::from_identifier(
//!     "https://api.example.com",
//!     vec!["https://auth.example.com".to_owned()],
//! )?;
//! let app = Router::new()
//!     .route("/hello", get(|caller: Caller| async move { format!("hello {}", caller.client_id()) }))
//!     .layer(RequireBearerLayer::new(verifier).challenge(metadata.challenge()))
//!     .merge(metadata.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod cache;
pub mod challenge;
pub mod dpop;
pub mod error;
pub mod identity;
pub mod introspect;
pub mod keys;
pub mod layer;
pub mod metadata;
pub mod verifier;

/// The guide (`docs/resource.md`): protecting an axum API, MCP servers, tokens from Keycloak,
/// Entra ID and Auth0, key rotation. Its examples compile as doctests.
#[doc = include_str!("../../../docs/resource.md")]
pub mod guide {}

pub use challenge::Challenge;
pub use dpop::{DpopMode, DpopSettings, MemoryProofStore, ProofReplayStore, RedisProofStore};
pub use error::Refusal;
pub use identity::Caller;
pub use introspect::Introspection;
pub use keys::TrustedIssuer;
pub use layer::{RequireBearer, RequireBearerLayer, bearer_token};
pub use metadata::ResourceMetadata;
pub use verifier::{ConfigError, Verifier, VerifierBuilder};
