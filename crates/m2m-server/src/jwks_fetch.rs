//! Fetching clients' `jwks_uri`: https only (loopback http for development), no redirects, a
//! timeout and a body cap, a cache that honours `Cache-Control: max-age` within a floor and a
//! ceiling, one rate-limited refetch when a `kid` is unknown, single-flight, and stale-if-error.
//!
//! Threat model: the URL comes from the operator's registry, not from the assertion (`jku`/`x5u`
//! headers are ignored), so SSRF is limited to what the operator configured; the caps stop a
//! hostile or broken endpoint from exhausting memory or pinning request handlers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use m2m_core::clock::{Clock, UnixTime};
use url::Url;

use crate::registry::{is_loopback, parse_jwks};

/// The keys of one fetched JWKS (core's [`m2m_core::ids::KeySet`]).
pub(crate) use m2m_core::ids::KeySet;

/// How the fetcher caches and limits.
#[derive(Clone, Debug)]
pub(crate) struct FetchPolicy {
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Largest accepted body; the download stops as soon as it is exceeded.
    pub max_body_bytes: usize,
    /// Shortest cache lifetime, whatever `Cache-Control` says (protects the JWKS host from us).
    pub min_ttl: Duration,
    /// Longest cache lifetime (bounds how long a revoked key stays trusted).
    pub max_ttl: Duration,
    /// Lifetime when the response has no `max-age`.
    pub default_ttl: Duration,
    /// Refetch once when an assertion's `kid` is not in a fresh cached set.
    pub refetch_on_unknown_kid: bool,
    /// At most one unknown-kid refetch per URI in this interval (a client sending random kids
    /// must not turn us into a request amplifier).
    pub unknown_kid_interval: Duration,
    /// How long past expiry a cached set may still be used when refetching fails.
    pub stale_if_error: Duration,
    /// After a failed fetch, wait this long before trying again (requests meanwhile get the
    /// stale set or the same error) so a broken host is not hit by every token request.
    pub error_backoff: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            timeout: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(3600),
            default_ttl: Duration::from_secs(300),
            refetch_on_unknown_kid: true,
            unknown_kid_interval: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(3600),
            error_backoff: Duration::from_secs(10),
        }
    }
}

impl FetchPolicy {
    /// NHS's behaviour: cached one hour per URL, no refetch when a kid is missing.
    pub(crate) fn nhs() -> Self {
        FetchPolicy {
            min_ttl: Duration::from_secs(3600),
            max_ttl: Duration::from_secs(3600),
            default_ttl: Duration::from_secs(3600),
            refetch_on_unknown_kid: false,
            ..FetchPolicy::default()
        }
    }

    /// Cache lifetime for a response with this `Cache-Control` header (pure).
    pub(crate) fn ttl_for(&self, cache_control: Option<&str>) -> Duration {
        let ttl = match cache_control.map(parse_cache_control) {
            Some(CacheDirective::MaxAge(secs)) => Duration::from_secs(secs),
            Some(CacheDirective::NoStore) => Duration::ZERO,
            Some(CacheDirective::None) | None => self.default_ttl,
        };
        ttl.clamp(self.min_ttl, self.max_ttl.max(self.min_ttl))
    }
}

/// What a `Cache-Control` header says about freshness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CacheDirective {
    /// `max-age=N` (`s-maxage` is for shared caches and ignored).
    MaxAge(u64),
    /// `no-store` or `no-cache`: as short as the floor allows.
    NoStore,
    /// Nothing about freshness.
    None,
}

/// Parses the freshness part of a `Cache-Control` header (pure).
pub(crate) fn parse_cache_control(value: &str) -> CacheDirective {
    let mut result = CacheDirective::None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return CacheDirective::NoStore;
        }
        if name.eq_ignore_ascii_case("max-age")
            && let Some(secs) = arg.and_then(|a| a.parse::<u64>().ok())
        {
            result = CacheDirective::MaxAge(secs);
        }
    }
    result
}

/// Why a JWKS could not be obtained. Never carries key material.
#[non_exhaustive]
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// The URL is not acceptable (scheme, non-loopback http, no path).
    #[error("JWKS URL {url} refused: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Connecting, TLS or the timeout failed.
    #[error("fetching {url} failed: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The host answered with a status other than 200 (redirects are not followed).
    #[error("fetching {url}: HTTP {status}{}", if (300..400).contains(status) { " (redirects are not followed)" } else { "" })]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The body exceeded the cap.
    #[error("fetching {url}: body larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// The body is not a usable JWKS.
    #[error("fetching {url}: not a usable JWKS: {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// The cached state of one URI.
#[derive(Debug)]
struct EntryState {
    keys: Option<KeySet>,
    fresh_until: UnixTime,
    stale_until: UnixTime,
    last_unknown_kid_refetch: Option<UnixTime>,
    /// The last fetch's error and when it happened (cleared by a success).
    last_error: Option<(FetchError, UnixTime)>,
}

impl Default for EntryState {
    fn default() -> Self {
        EntryState {
            keys: None,
            fresh_until: UnixTime::from_secs(0),
            stale_until: UnixTime::from_secs(0),
            last_unknown_kid_refetch: None,
            last_error: None,
        }
    }
}

/// One URI's cache. The async mutex is the single-flight: whoever holds it fetches, the others
/// wait for it and then see the result (`generation` tells them a fetch happened meanwhile).
#[derive(Debug, Default)]
struct Entry {
    state: tokio::sync::Mutex<EntryState>,
    generation: AtomicU64,
}

/// Fetches and caches clients' JWKS.
#[derive(Debug)]
pub(crate) struct JwksFetcher {
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    policy: FetchPolicy,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    fetches: AtomicU64,
}

impl JwksFetcher {
    /// A fetcher with its own HTTP client (no redirects, policy timeout).
    pub(crate) fn new(
        policy: FetchPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<JwksFetcher, FetchError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .user_agent(concat!("m2m-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Transport {
                url: String::new(),
                reason: e.to_string(),
            })?;
        Ok(JwksFetcher {
            http,
            clock,
            policy,
            entries: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        })
    }

    /// How many HTTP fetches were started (for metrics and tests).
    pub(crate) fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The keys for `url`, from cache when fresh. `kid` is the assertion's: when a fresh set
    /// lacks it, one refetch is made (at most once per [`FetchPolicy::unknown_kid_interval`]).
    pub(crate) async fn keys(&self, url: &Url, kid: Option<&str>) -> Result<KeySet, FetchError> {
        let entry = {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(entries.entry(url.as_str().to_owned()).or_default())
        };
        let generation_before = entry.generation.load(Ordering::Acquire);
        let mut state = entry.state.lock().await;
        let someone_fetched = entry.generation.load(Ordering::Acquire) != generation_before;
        let now = self.clock.now();
        let has_kid = |keys: &KeySet| kid.is_none_or(|k| keys.by_kid(k).is_some());

        let recent_error = state
            .last_error
            .as_ref()
            .filter(|(_, at)| someone_fetched || now < at.add(self.policy.error_backoff))
            .map(|(e, _)| e.clone());
        if let Some(keys) = state.keys.clone() {
            let fresh = now < state.fresh_until;
            if fresh && (has_kid(&keys) || someone_fetched) {
                return Ok(keys);
            }
            if fresh {
                let allowed = self.policy.refetch_on_unknown_kid
                    && state
                        .last_unknown_kid_refetch
                        .is_none_or(|t| now >= t.add(self.policy.unknown_kid_interval));
                if !allowed {
                    return Ok(keys);
                }
                state.last_unknown_kid_refetch = Some(now);
                tracing::info!(jwks_uri = %url, kid = kid.unwrap_or(""), "unknown kid: refetching JWKS");
            } else if let Some(err) = recent_error {
                // A fetch just failed (ours to wait for, or within the back-off): share its outcome.
                return if now < state.stale_until {
                    Ok(keys)
                } else {
                    Err(err)
                };
            }
        } else if let Some(err) = recent_error {
            return Err(err);
        }

        let result = self.fetch(url).await;
        entry.generation.fetch_add(1, Ordering::AcqRel);
        let now = self.clock.now();
        match result {
            Ok((keys, ttl)) => {
                state.keys = Some(keys.clone());
                state.fresh_until = now.add(ttl);
                state.stale_until = state.fresh_until.add(self.policy.stale_if_error);
                state.last_error = None;
                Ok(keys)
            }
            Err(err) => {
                state.last_error = Some((err.clone(), now));
                match state.keys.clone() {
                    Some(keys) if now < state.fresh_until => {
                        tracing::warn!(jwks_uri = %url, error = %err, "JWKS refetch failed; keeping the fresh cached set");
                        Ok(keys)
                    }
                    Some(keys) if now < state.stale_until => {
                        tracing::warn!(jwks_uri = %url, error = %err, "JWKS refetch failed; serving the stale set (stale-if-error)");
                        Ok(keys)
                    }
                    _ => Err(err),
                }
            }
        }
    }

    /// One HTTP GET, streamed and capped.
    async fn fetch(&self, url: &Url) -> Result<(KeySet, Duration), FetchError> {
        let url_s = url.as_str().to_owned();
        check_fetchable(url)?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let transport = |e: reqwest::Error| FetchError::Transport {
            url: url_s.clone(),
            reason: e.to_string(),
        };
        let mut response = self
            .http
            .get(url.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status { url: url_s, status });
        }
        let limit = self.policy.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(FetchError::TooLarge { url: url_s, limit });
        }
        let cache_control = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge { url: url_s, limit });
            }
            body.extend_from_slice(&chunk);
        }
        let parsed = parse_jwks(&body).map_err(|reason| FetchError::Invalid {
            url: url_s.clone(),
            reason,
        })?;
        Ok((parsed.keys, self.policy.ttl_for(cache_control.as_deref())))
    }
}

/// https, or http to loopback; and a path (NHS refuses `https://host` with no path).
fn check_fetchable(url: &Url) -> Result<(), FetchError> {
    let refuse = |reason: &str| {
        Err(FetchError::Url {
            url: url.as_str().to_owned(),
            reason: reason.to_owned(),
        })
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(url) => {}
        "http" => return refuse("plain http is only allowed to a loopback address"),
        _ => return refuse("only https is supported"),
    }
    if url.path().is_empty() || url.path() == "/" {
        return refuse("the URL has no path");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_parsing() {
        assert_eq!(
            parse_cache_control("public, max-age=120"),
            CacheDirective::MaxAge(120)
        );
        assert_eq!(
            parse_cache_control("max-age=\"30\""),
            CacheDirective::MaxAge(30)
        );
        assert_eq!(parse_cache_control("no-store"), CacheDirective::NoStore);
        assert_eq!(
            parse_cache_control("max-age=10, no-cache"),
            CacheDirective::NoStore
        );
        assert_eq!(parse_cache_control("public"), CacheDirective::None);
        assert_eq!(parse_cache_control("max-age=abc"), CacheDirective::None);
    }

    #[test]
    fn ttl_is_clamped() {
        let p = FetchPolicy::default();
        assert_eq!(p.ttl_for(Some("max-age=5")), Duration::from_secs(60));
        assert_eq!(p.ttl_for(Some("max-age=600")), Duration::from_secs(600));
        assert_eq!(p.ttl_for(Some("max-age=999999")), Duration::from_secs(3600));
        assert_eq!(p.ttl_for(Some("no-store")), Duration::from_secs(60));
        assert_eq!(p.ttl_for(None), Duration::from_secs(300));
        assert_eq!(
            FetchPolicy::nhs().ttl_for(Some("max-age=5")),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn urls_without_path_or_https_are_refused() {
        for bad in [
            "https://example.com",
            "https://example.com/",
            "http://example.com/jwks",
            "ftp://x/y",
        ] {
            let url = Url::parse(bad).expect("url");
            assert!(check_fetchable(&url).is_err(), "{bad}");
        }
        for good in [
            "https://example.com/jwks.json",
            "http://127.0.0.1:9/jwks",
            "http://localhost/x",
        ] {
            let url = Url::parse(good).expect("url");
            assert!(check_fetchable(&url).is_ok(), "{good}");
        }
    }
}
