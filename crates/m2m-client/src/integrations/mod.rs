//! Ways to put a [`crate::source::TokenSource`] token on outgoing requests, each behind its own
//! cargo feature so that nobody compiles an HTTP stack they do not use.
//!
//! - `reqwest-middleware`: [`middleware::BearerMiddleware`] for `reqwest_middleware` clients.
//! - `tower`: [`tower::BearerLayer`] for hyper, tonic and axum clients (`http::Request`).
//! - `blocking`: [`blocking::BlockingTokenSource`] for programs without an async runtime.

#[cfg(feature = "blocking")]
pub mod blocking;
#[cfg(feature = "reqwest-middleware")]
pub mod middleware;
#[cfg(feature = "tower")]
pub mod tower;
