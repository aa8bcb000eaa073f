//! The client tests' own helpers around the shared verifying token endpoint
//! (`m2m_testkit::token_endpoint`): `request` for the single-request tests (RSA, RS512 with kid,
//! a script of replies, every request recorded), `source` for the `TokenSource` tests (P-256,
//! one answer at a time, a manual clock).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod request;
pub mod source;
