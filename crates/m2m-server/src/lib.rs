//! m2m-server: a strict `private_key_jwt` authorization server — the token endpoint behind
//! `m2m serve` and `m2m demo`, with an NHS England emulation profile.
//!
//! # Layout
//!
//! - [`config`]: [`ServerConfig`], every knob of the server with its default.
//! - [`app`]: [`Server::start`] / [`RunningServer`] — binds, wires the router, graceful shutdown.
//! - `serve` (private): the accept loop — HTTP/1.1 with header-read, idle, write-stall and
//!   lifetime limits, a per-address connection cap and a shutdown deadline.
//! - `write_stall` (private): the stream wrapper that drops a connection whose writes stall.
//! - `peer_cap` (private): connections per peer IP address and their cap.
//! - [`token`]: `POST /oauth2/token`, the rfc and nhs flows (validator + registry + replay store).
//! - [`introspect`]: `POST /oauth2/introspect` (RFC 7662), callers authenticate with
//!   `private_key_jwt` too.
//! - [`metadata`]: RFC 8414 metadata and the server's public JWKS.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`metrics`]: counters and the latency histogram, rendered as Prometheus text.
//! - [`ratelimit`]: per-client token buckets (pure; time passed in).
//! - [`registry`]: the client registry file (TOML) — loading with precise errors.
//! - [`registry_edit`]: comment-preserving edits of that file, for `m2m clients`.
//! - [`jwks_fetch`]: fetching clients' `jwks_uri` (cache, single-flight, stale-if-error).
//! - [`issuer`]: the server's signing keys on disk and RFC 9068 access tokens.
//! - [`replay`]: the replay stores (memory, SQLite, Redis).
//! - [`response`]: how a refusal becomes an HTTP response in each profile.
//! - [`error`]: this crate's start-up/configuration error type.
//!
//! Pure rules (assertion validation) live in `m2m_core::validate`; this crate does the I/O
//! around them in the order SPEC §4 fixes.
//!
//! # Example: an in-process server on a free loopback port
//!
//! ```
//! use m2m_server::{Server, ServerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("m2m-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! std::fs::write(dir.join("clients.toml"), "")?;           // no clients yet
//! let mut config = ServerConfig::new(dir.join("clients.toml"));
//! config.listen = "127.0.0.1:0".parse()?;
//! config.replay_store = "memory".into();
//! config.data_dir = dir.join("data");                       // signing key created here
//! let server = Server::start(config).await?;
//! println!("token endpoint: {}", server.token_url());
//! server.shutdown().await?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod error;
pub mod health;
pub mod introspect;
pub mod issuer;
pub mod jwks_fetch;
pub mod metadata;
pub mod metrics;
mod peer_cap;
pub mod ratelimit;
pub mod registry;
pub mod registry_edit;
pub mod replay;
pub mod response;
mod serve;
pub mod token;
mod write_stall;

pub use app::{RunningServer, Server, run_until_signal};
pub use config::{Profile, ServerConfig};
pub use error::Error;
