//! m2m-server: a strict `private_key_jwt` authorization server — the token endpoint behind
//! `m2m serve` and `m2m demo`, with an NHS England emulation profile.
//!
//! # Layout
//!
//! Start-up and plumbing:
//! - `config`: [`ServerConfig`], every knob of the server with its default.
//! - `app`: [`Server::start`] / [`RunningServer`] — binds, loads, wires the router, graceful
//!   shutdown. `state`: the `AppState` every handler shares. `paths`: the URL paths
//!   ([`TOKEN_PATH`], …), written once.
//! - `serve`: the accept loop — HTTP/1.1 with header-read, idle, write-stall and lifetime limits,
//!   a per-address connection cap and a shutdown deadline; public as [`serve_with_limits`] (TCP or
//!   Unix [`Listener`], [`ConnectionLimits`]) for the binary's other listeners. `write_stall`: the stream wrapper
//!   that drops a connection whose writes stall. `peer_cap`: connections per peer IP address.
//! - `request_id`: the per-request id (log span, `X-Request-Id`, NHS `message_id`).
//! - `body`: reading a request body within the size and time limits.
//!
//! Endpoints:
//! - `token`: `POST /oauth2/token` — the handler and what both flows share; `token/rfc.rs` and
//!   `token/nhs.rs` are the two profiles' flows.
//! - `introspect`: `POST /oauth2/introspect` (RFC 7662).
//! - `authorize`: `/oauth2/authorize`, named in the metadata for clients that require one; it
//!   refuses every request (400 `unsupported_response_type`).
//! - `metadata`: RFC 8414 metadata (derived from the registry) and the server's public JWKS.
//! - `health`: `/healthz` and `/readyz`. `metrics`: `/metrics`, counters and the latency
//!   histogram as Prometheus text.
//!
//! What the endpoints share:
//! - `client_auth`: client authentication, the one entry point for every method — one method per
//!   request, the client it names, dispatch on the method the client is registered for
//!   ([`AuthMethod`]).
//! - `refusal`: a refusal on its way out (log line, replay-store 503, rate-limit 429).
//!   `response`: how it becomes an HTTP response in each profile.
//! - `ratelimit`: per-client token buckets (pure; time passed in).
//! - `dpop`: DPoP (RFC 9449) at the token endpoint — the per-client [`DpopPolicy`], the proof
//!   check before client authentication and the binding (`cnf.jkt`, proof `jti` single use)
//!   after it. `dpop_nonce`: the stateless rotating server nonces of `--dpop-nonce`.
//! - Clients' `jwks_uri` are fetched by `m2m_discovery::JwksFetcher` (cache, single flight,
//!   stale-if-error), under `FetchPolicy::default()` (rfc) or `FetchPolicy::nhs()`.
//! - `issuer`: the server's signing keys on disk ([`ServerKeys`]) and RFC 9068 access tokens.
//!
//! Files and stores:
//! - `registry`: the client registry file (TOML) — [`Registry`], loading with precise errors.
//! - `live_registry`: the registry a running server answers from, swapped whole on reload
//!   (SIGHUP); a file that does not load keeps the old one.
//! - `trust`: the registry's `[[trust]]` entries (workload issuers whose tokens are accepted as
//!   the jwt-bearer grant or a federated client assertion), their keys, the checks and the edits
//!   behind `m2m trust` ([`add_trust`], [`list_trusts`], [`remove_trust`]).
//! - `registry_edit`: comment-preserving edits of that file, for `m2m clients` ([`add_client`],
//!   secret rotation: [`add_secret_verifier`], [`retire_secret_verifiers`]).
//! - `secrets_file`: the `client_secret_jwt` secrets file (0600, refused when others can read
//!   it) and its edits ([`add_jwt_secret`], [`retire_jwt_secrets`]).
//! - [`replay`]: the replay stores (memory, SQLite, Redis) behind one trait, public so that
//!   embedders and benchmarks can open and implement stores.
//! - `error`: [`Error`], this crate's start-up/configuration error type.
//!
//! The modules are private; what embedders, the CLI and the tests use is re-exported below.
//! Pure rules (assertion validation) live in `m2m_core::validate`; this crate does the I/O
//! around them in the order docs/protocol.md fixes.
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

mod app;
mod authorize;
mod body;
mod client_auth;
mod config;
mod dpop;
mod dpop_nonce;
mod error;
mod health;
mod introspect;
mod issuer;
mod live_registry;
mod log_limit;
mod metadata;
mod metrics;
mod paths;
mod peer_cap;
mod ratelimit;
mod refusal;
mod registry;
mod registry_edit;
pub mod replay;
mod request_id;
mod response;
mod secrets_file;
mod serve;
mod state;
mod token;
mod trust;
mod write_stall;

pub use app::{CheckReport, RunningServer, Server, run_until_signal};
pub use config::{
    DEFAULT_ACCESS_TOKEN_LIFETIME, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTION_LIFETIME, DEFAULT_MAX_CONNECTIONS_PER_IP,
    DEFAULT_RATE_LIMIT_PER_MINUTE, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_WRITE_STALL_TIMEOUT, Profile,
    ServerConfig,
};
pub use dpop::DpopPolicy;
pub use error::Error;
pub use issuer::ServerKeys;
pub use live_registry::Reloaded;
pub use paths::{AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, METADATA_PATH, TOKEN_PATH};
pub use registry::{
    AuthMethod, Client, ClientKeySource, DEFAULT_REMOTE_ALGS, MAX_TOKEN_LIFETIME, Registry,
    RegistryError, StoredSecret, StoredVerifier, default_secrets_path,
};
pub use registry_edit::{
    ClientSummary, NewClient, NewClientKeys, add_client, add_secret_verifier, list_clients,
    remove_client, retire_secret_verifiers, set_client_algs,
};
pub use secrets_file::{add_jwt_secret, remove_jwt_secrets, retire_jwt_secrets};
pub use serve::{
    ConnService, ConnectionLimits, Listener, ResponseBody, serve_service_with_limits,
    serve_with_limits,
};
pub use trust::edit::{NewTrust, add_trust, list_trusts, remove_trust};
pub use trust::keys::TRUST_KEYS_WAIT;
pub use trust::{
    DEFAULT_TRUST_MAX_LIFETIME, Reuse, SubjectRule, Trust, TrustGrant, TrustKeySource,
};
