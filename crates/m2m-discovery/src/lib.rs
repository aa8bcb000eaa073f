//! m2m-discovery: fetching other parties' documents under one policy — RFC 8414 / OpenID
//! Connect authorization-server metadata, RFC 9728 protected-resource metadata and JWKS.
//!
//! The client (finding a token endpoint), the server (its clients' `jwks_uri`), the resource
//! verifier (an issuer's keys) and `m2m jwks check` all fetch through this crate, so they share
//! one URL policy (https, plain http only to loopback, no redirects), one set of caps (body size,
//! timeout, `Cache-Control` clamped between a floor and a ceiling) and one cache state machine
//! (kid-miss refetch at most once per interval, single flight, stale-if-error, error back-off).
//! Decisions are pure and tested with an injected clock; I/O sits in a thin layer around them.
//!
//! # Layout
//!
//! - [`policy`]: [`UrlPolicy`] (https, loopback http, optional path rule,
//!   `dangerous_allow_insecure_http`) and the loopback test.
//! - [`jwks`]: reading a JWKS into an [`m2m_core::ids::KeySet`] (unusable keys skipped and
//!   logged, duplicate kids and private members refused, a published `alg` bound to its key);
//!   [`MAX_JWKS_BYTES`].
//! - [`fetch_policy`]: [`FetchPolicy`] (timeouts, caps, cache bounds; weakening only through
//!   `dangerous_…` setters) and `Cache-Control` parsing.
//! - [`cache`]: the pure cache state machine ([`cache::decide`], [`cache::record`]).
//! - [`http`]: the one capped, redirect-refusing GET ([`HttpClient`]).
//! - [`fetch`]: [`JwksFetcher`], the cache with HTTP and single flight.
//! - [`metadata`]: RFC 8414 / OIDC / RFC 9728 URLs, parsers with the exact identifier checks,
//!   and fetchers.
//! - [`check`]: the JWKS analysis behind `m2m jwks check`, as data.
//! - [`error`]: the crate's [`Error`] (and [`JwksError`] for JWKS documents).
//!
//! # Example: the keys of a `jwks_uri`, cached
//!
//! ```no_run
//! use std::sync::Arc;
//! use m2m_core::clock::SystemClock;
//! use m2m_discovery::{FetchPolicy, JwksFetcher};
//!
//! # async fn run() -> Result<(), m2m_discovery::Error> {
//! let fetcher = JwksFetcher::new(FetchPolicy::default(), Arc::new(SystemClock))?;
//! let url = url::Url::parse("https://billing.example/.well-known/jwks.json").expect("a URL");
//! // The kid the token names: a fresh cached set lacking it is refetched once.
//! let keys = fetcher.keys(&url, Some("2026-12")).await?;
//! let key = keys.by_kid("2026-12");
//! # let _ = key;
//! # Ok(()) }
//! ```
//!
//! # Example: checking a URL and a metadata document, no network
//!
//! ```
//! use m2m_discovery::{Error, UrlPolicy, metadata::parse_auth_server_metadata};
//!
//! let policy = UrlPolicy::new();
//! assert!(policy.parse("http://127.0.0.1:8080/jwks").is_ok());
//! assert!(matches!(policy.parse("http://as.example/jwks"), Err(Error::InsecureHttp { .. })));
//!
//! let body = br#"{"issuer":"https://as.example","token_endpoint":"https://as.example/token"}"#;
//! let meta = parse_auth_server_metadata("https://as.example", body, &policy)?;
//! assert_eq!(meta.require_token_endpoint()?.as_str(), "https://as.example/token");
//! // The issuer must match exactly: a trailing slash is another issuer.
//! assert!(matches!(
//!     parse_auth_server_metadata("https://as.example/", body, &policy),
//!     Err(Error::IssuerMismatch { .. })
//! ));
//! # Ok::<(), Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod cache;
pub mod check;
pub mod error;
pub mod fetch;
pub mod fetch_policy;
pub mod http;
pub mod jwks;
pub mod metadata;
pub mod policy;

pub use error::{Error, JwksError};
pub use fetch::JwksFetcher;
pub use fetch_policy::{CacheDirective, FetchPolicy, MIN_TTL_FLOOR, parse_cache_control};
pub use http::{Document, HttpClient};
pub use jwks::{IMPLIED_RSA_ALGS, MAX_JWKS_BYTES, ParsedJwks, parse_jwks};
pub use metadata::{AuthServerMetadata, MetadataSources, ProtectedResourceMetadata};
pub use policy::{UrlPolicy, is_loopback, is_loopback_host};
