//! m2m-core: the pure heart of m2m — keys, JWK/JWKS, compact JWS, and the private_key_jwt
//! client-assertion builder and validator.
//!
//! Nothing in this crate does I/O: it never opens a file, a socket or reads the clock by itself
//! (time is passed in through [`clock::Clock`] or as a [`clock::UnixTime`]), so every rule can be
//! tested deterministically and reused by the client, the server and the CLI.
//!
//! # Layout
//!
//! - [`alg`]: the JOSE signature algorithms we support and how they map to key types.
//! - [`key`]: private and public keys on aws-lc-rs — loading (PEM, encrypted PKCS#8, JWK),
//!   generating, exporting, signing and verifying. Keys are parsed once.
//! - [`jwk`]: the JWK / JWKS JSON model, private-member detection and RFC 7638 thumbprints.
//! - [`signer`]: the [`signer::Signer`] seam, so a KMS or HSM can sign instead of a local key.
//! - [`jws`]: compact JWS parsing, signing and verification (our thin layer over aws-lc-rs).
//! - [`assertion`]: the RFC 7523 client-assertion builder (audience rules, lifetime, fresh `jti`).
//! - [`dpop`]: the RFC 9449 DPoP proof builder (its validator is [`validate::dpop`]).
//! - [`secret`]: client secrets — the redacted, zeroized [`secret::ClientSecret`] and the
//!   SHA-256 [`secret::SecretVerifier`] a server stores, compared in constant time.
//! - [`hmac`]: `client_secret_jwt` — HS256/384/512 with the key-length rule, and the
//!   [`hmac::SecretJwtBuilder`].
//! - [`nhs`]: NHS England API platform environments and token URLs.
//! - [`validate`]: the client-assertion validator (token endpoint: rfc and nhs profiles), the
//!   RFC 9068 access-token validator ([`validate::access_token`], resource servers and
//!   introspection), the DPoP proof validator ([`validate::dpop`]) and the linter behind `m2m decode --lint`.
//! - [`ids`]: protocol newtypes ([`ids::ClientId`], [`ids::Kid`], [`ids::Issuer`]) and the
//!   [`ids::KeySet`] of kid-and-key entries.
//! - [`wire`]: wire constants (grant types, assertion type, form media type), written once.
//! - [`clock`]: injected time.
//! - [`error`]: the crate's error type.
//! - [`manual`]: the threat model and why the defaults are what they are.
//!
//! # Example: an NHS-ready client assertion
//!
//! ```
//! use std::sync::Arc;
//! use m2m_core::{alg::Algorithm, assertion::{AssertionBuilder, Audience}, clock::{Clock, SystemClock},
//!                key::{KeySpec, PrivateKey}, signer::KeySigner};
//!
//! # fn main() -> Result<(), m2m_core::Error> {
//! let key = Arc::new(PrivateKey::generate(KeySpec::Rsa { bits: 2048 })?);
//! let signer = KeySigner::new(key, Algorithm::Rs512, Some("int-1".into()))?;
//! let builder = AssertionBuilder::new(
//!     Arc::new(signer),
//!     "my-api-key",
//!     Audience::TokenUrl("https://int.api.service.nhs.uk/oauth2/token".into()),
//! );
//! let assertion = builder.build(SystemClock.now())?;
//! assert_eq!(assertion.as_str().split('.').count(), 3);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod alg;
pub mod assertion;
mod b64;
pub mod clock;
pub mod dpop;
pub mod error;
pub mod hmac;
pub mod ids;
pub mod jwk;
pub mod jws;
pub mod key;
pub mod nhs;
pub mod secret;
pub mod signer;
pub mod validate;
pub mod wire;

pub use error::Error;

/// The threat model and the reasons for m2m's defaults (`docs/security.md`): audience injection,
/// replay, algorithm and key confusion, SSRF through `jwks_uri`, why assertions live 60 s.
#[doc = include_str!("../../../docs/security.md")]
pub mod manual {}
