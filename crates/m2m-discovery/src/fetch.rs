//! The cached JWKS fetcher: [`crate::cache`]'s decisions with HTTP, a lock per URL and single
//! flight.
//!
//! Threat model: the URL comes from configuration (a registry, an issuer's metadata), never from
//! a token header (`jku`/`x5u` are ignored), so SSRF is limited to what the operator configured;
//! the caps stop a hostile or broken host from exhausting memory or pinning callers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use m2m_core::clock::Clock;
use m2m_core::ids::KeySet;
use url::Url;

use crate::cache::{self, Action, EntryState, FetchReason, Outcome};
use crate::error::Error;
use crate::fetch_policy::FetchPolicy;
use crate::http::HttpClient;
use crate::jwks::parse_jwks;
use crate::policy::shown;

/// What a JWKS request accepts.
const JWKS_ACCEPT: &str = "application/jwk-set+json, application/json";

/// One URL's cache. The async mutex is the single flight: whoever holds it fetches, the others
/// wait for it and then see the result (`generation` tells them a fetch happened meanwhile). It
/// is per URL, so a slow host holds up only the callers of that host.
#[derive(Debug, Default)]
struct Entry {
    state: tokio::sync::Mutex<EntryState>,
    /// Counts finished fetches; read before and after taking `state` to learn whether another
    /// caller fetched while this one waited.
    generation: AtomicU64,
}

/// Fetches and caches JWKS documents by URL, under a [`FetchPolicy`].
#[derive(Debug)]
pub struct JwksFetcher {
    http: HttpClient,
    clock: Arc<dyn Clock>,
    policy: FetchPolicy,
    /// URL → entry. A std mutex: held only to find or insert the entry, never across an await.
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    fetches: AtomicU64,
}

impl JwksFetcher {
    /// A fetcher with its own HTTP client (no redirects, the policy's timeout).
    pub fn new(policy: FetchPolicy, clock: Arc<dyn Clock>) -> Result<JwksFetcher, Error> {
        let http = HttpClient::new(policy.timeout())?;
        Ok(JwksFetcher::with_http(http, policy, clock))
    }

    /// A fetcher over a given client (to set the user agent). The client's timeout is used for
    /// requests; the policy's only when the fetcher builds its own client.
    pub fn with_http(http: HttpClient, policy: FetchPolicy, clock: Arc<dyn Clock>) -> JwksFetcher {
        JwksFetcher {
            http,
            clock,
            policy,
            entries: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// How many HTTP fetches were started (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The keys for `url`, from cache when fresh. `kid` is the one the caller needs: when a fresh
    /// set lacks it, one refetch is made (at most once per
    /// [`FetchPolicy::unknown_kid_interval`]). The answer may still lack `kid`; the caller then
    /// refuses the token.
    pub async fn keys(&self, url: &Url, kid: Option<&str>) -> Result<KeySet, Error> {
        let entry = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(entries.entry(url.as_str().to_owned()).or_default())
        };
        let generation_before = entry.generation.load(Ordering::Acquire);
        let mut state = entry.state.lock().await;
        let fetched_while_waiting = entry.generation.load(Ordering::Acquire) != generation_before;
        let started = self.clock.now();
        let reason = match cache::decide(&state, started, kid, fetched_while_waiting, &self.policy)
        {
            Action::Serve(keys) => return Ok(keys),
            Action::Fail(err) => return Err(err),
            Action::Fetch(reason) => reason,
        };
        if reason == FetchReason::UnknownKid {
            tracing::info!(jwks_uri = %url, kid = kid.unwrap_or(""), "unknown kid: refetching JWKS");
        }
        let result = self.fetch(url).await;
        entry.generation.fetch_add(1, Ordering::AcqRel);
        let outcome = cache::record(
            &mut state,
            reason,
            started,
            kid,
            result,
            self.clock.now(),
            &self.policy,
        );
        match &outcome {
            Outcome::KeptFresh { error, .. } => {
                tracing::warn!(jwks_uri = %url, %error, "JWKS refetch failed; keeping the fresh cached set");
            }
            Outcome::ServedStale { error, .. } => {
                tracing::warn!(jwks_uri = %url, %error, "JWKS refetch failed; serving the stale set (stale-if-error)");
            }
            Outcome::Fetched(_) | Outcome::Failed(_) => {}
        }
        outcome.into_result()
    }

    /// One GET, streamed and capped, parsed, with its cache lifetime.
    async fn fetch(&self, url: &Url) -> Result<(KeySet, Duration), Error> {
        self.policy.url_policy().check(url)?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let document = self
            .http
            .get(
                url,
                &self.policy.url_policy(),
                JWKS_ACCEPT,
                self.policy.max_body_bytes(),
            )
            .await?;
        if document.status != 200 {
            return Err(Error::Status {
                url: shown(url),
                status: document.status,
            });
        }
        let parsed = parse_jwks(&document.body).map_err(|source| Error::InvalidJwks {
            url: shown(url),
            source,
        })?;
        Ok((
            parsed.keys,
            self.policy.ttl_for(document.cache_control.as_deref()),
        ))
    }
}
