//! [`AppState`]: what every request handler shares, built once at start-up by [`crate::app`].

use std::sync::Arc;

use m2m_core::validate::{NhsValidator, RfcValidator};

use crate::config::ServerConfig;
use crate::dpop::TokenEndpointDpop;
use crate::issuer::AccessTokenIssuer;
use crate::live_registry::LiveRegistry;
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::replay::ReplayStore;
use m2m_discovery::JwksFetcher;

/// Everything a request handler needs, shared by all requests.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) config: ServerConfig,
    /// The issuer identifier (no trailing slash).
    pub(crate) issuer: String,
    pub(crate) token_url: String,
    /// The client registry, swapped whole on reload (SIGHUP).
    pub(crate) registry: LiveRegistry,
    pub(crate) fetcher: JwksFetcher,
    /// The trusted workload issuers' discovered `jwks_uri`s (`[[trust]]`).
    pub(crate) trust_keys: crate::trust::keys::TrustKeys,
    pub(crate) tokens: AccessTokenIssuer,
    pub(crate) replay: Arc<dyn ReplayStore>,
    pub(crate) limiter: RateLimiter,
    /// Caps refusal log lines per second (an unauthenticated flood must not fill the disk).
    pub(crate) refusal_log: LogLimiter,
    pub(crate) metrics: Metrics,
    pub(crate) rfc: RfcValidator,
    pub(crate) nhs: NhsValidator,
    /// DPoP at the token endpoint: the proof validator and the optional server nonces.
    pub(crate) dpop: TokenEndpointDpop,
}
