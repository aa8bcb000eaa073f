//! Shared test fixtures for the m2m crates (never published, only a dev-dependency), in the way
//! rustls keeps its fixtures in `rustls-test`: written once, so the four crates' tests cannot
//! drift apart.
//!
//! # Layout
//! - [`keys`]: test keys (RSA-2048/4096, P-256, P-384, P-521, Ed25519), each generated once per test
//!   binary, because RSA generation is the slow part of most test binaries.
//! - [`token_endpoint`]: a real token endpoint on 127.0.0.1 that verifies every client assertion
//!   (signature, iss/sub/aud/exp/jti), answers from a scripted queue of [`token_endpoint::Reply`]s
//!   and records what it received; it can expect a federated credential (the JWT a test wrote, as
//!   client assertion or jwt-bearer grant) instead.
//! - [`actions_token`]: a loopback fake of the GitHub Actions ID-token service that checks the
//!   bearer and the audience, for the client's GitHub Actions assertion source.
//! - [`redis`]: a `redis-server` of the test's own; a test that needs it fails (never skips) under
//!   `CI=true`.
//! - [`net`]: loopback ports.
//!
//! Depends on m2m-core only, so every crate (core included) can use it in its tests.
#![forbid(unsafe_code)]

pub mod actions_token;
pub mod keys;
pub mod net;
pub mod redis;
pub mod token_endpoint;
