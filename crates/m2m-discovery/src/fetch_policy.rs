//! How the JWKS fetcher caches and limits ([`FetchPolicy`]), and how a `Cache-Control` header
//! becomes a cache lifetime. Pure.
//!
//! Fields are private: the setters clamp to safe bounds, and only `dangerous_…` setters can go
//! past them (a larger body cap lets a hostile host make us hold more; a lower TTL floor lets a
//! `max-age=0` host make us refetch on every request, turning us into its load generator).

use std::time::Duration;

use crate::jwks::MAX_JWKS_BYTES;
use crate::policy::UrlPolicy;

/// The smallest cache lifetime the safe setter accepts: one fetch per URL per minute at most,
/// whatever `Cache-Control` says.
pub const MIN_TTL_FLOOR: Duration = Duration::from_secs(60);

/// How the JWKS fetcher caches and limits. [`FetchPolicy::default`] is the RFC profile of
/// `m2m serve`; [`FetchPolicy::nhs`] mimics NHS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchPolicy {
    url: UrlPolicy,
    timeout: Duration,
    max_body_bytes: usize,
    min_ttl: Duration,
    max_ttl: Duration,
    default_ttl: Duration,
    refetch_on_unknown_kid: bool,
    unknown_kid_interval: Duration,
    stale_if_error: Duration,
    error_backoff: Duration,
}

impl Default for FetchPolicy {
    /// 5 s timeout (a token request waits on the fetch); 64 KiB body; cache 60 s..1 h, 5 min
    /// without `max-age`; unknown-kid refetch at most once a minute; stale keys served for up to
    /// 1 h when the host fails; 10 s back-off after a failure. URLs: https (loopback http) with a
    /// path.
    fn default() -> Self {
        FetchPolicy {
            url: UrlPolicy::new().require_path(),
            timeout: Duration::from_secs(5),
            max_body_bytes: MAX_JWKS_BYTES,
            min_ttl: MIN_TTL_FLOOR,
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
    pub fn nhs() -> Self {
        FetchPolicy {
            min_ttl: Duration::from_secs(3600),
            max_ttl: Duration::from_secs(3600),
            default_ttl: Duration::from_secs(3600),
            refetch_on_unknown_kid: false,
            ..FetchPolicy::default()
        }
    }

    /// Which URLs may be fetched (default: https or loopback http, with a path).
    pub fn url_policy(&self) -> UrlPolicy {
        self.url
    }
    /// Whole-request timeout (connect, headers and body).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// Largest accepted body; the download stops as soon as it is exceeded.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
    /// Shortest cache lifetime, whatever `Cache-Control` says (protects the host from us).
    pub fn min_ttl(&self) -> Duration {
        self.min_ttl
    }
    /// Longest cache lifetime (bounds how long a removed key stays trusted).
    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
    }
    /// Lifetime when the response has no `max-age`.
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }
    /// Whether a fresh set lacking the asked kid is refetched once.
    pub fn refetch_on_unknown_kid(&self) -> bool {
        self.refetch_on_unknown_kid
    }
    /// At most one unknown-kid refetch per URL in this interval (a caller sending random kids
    /// must not turn us into a request amplifier).
    pub fn unknown_kid_interval(&self) -> Duration {
        self.unknown_kid_interval
    }
    /// How long past expiry a cached set may still be used while refetching fails.
    pub fn stale_if_error(&self) -> Duration {
        self.stale_if_error
    }
    /// After a failed fetch, how long callers get the stale set or the same error before the
    /// host is tried again (a broken host is not hit by every request).
    pub fn error_backoff(&self) -> Duration {
        self.error_backoff
    }

    /// Sets the URL policy. To allow plain http to a real host, pass a policy built with
    /// [`UrlPolicy::dangerous_allow_insecure_http`].
    pub fn with_url_policy(mut self, url: UrlPolicy) -> Self {
        self.url = url;
        self
    }
    /// Sets the timeout (a longer one pins callers longer on a hanging host; it is bounded by the
    /// callers' own patience, not weakening a check).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Sets the body cap, at most [`MAX_JWKS_BYTES`] (larger values are clamped; see
    /// [`FetchPolicy::dangerous_max_body_bytes`]).
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes.min(MAX_JWKS_BYTES);
        self
    }
    /// Sets the body cap without the [`MAX_JWKS_BYTES`] ceiling: a hostile host can then make us
    /// hold that much per fetch.
    pub fn dangerous_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
    /// Sets the TTL floor, at least [`MIN_TTL_FLOOR`] (lower values are clamped; see
    /// [`FetchPolicy::dangerous_min_ttl`]).
    pub fn with_min_ttl(mut self, ttl: Duration) -> Self {
        self.min_ttl = ttl.max(MIN_TTL_FLOOR);
        self
    }
    /// Sets the TTL floor below [`MIN_TTL_FLOOR`]: a host answering `max-age=0` can then make us
    /// fetch on every request.
    pub fn dangerous_min_ttl(mut self, ttl: Duration) -> Self {
        self.min_ttl = ttl;
        self
    }
    /// Sets the TTL ceiling (how long a key removed from the JWKS may stay trusted).
    pub fn with_max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }
    /// Sets the lifetime used when the response has no `max-age`.
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }
    /// Turns the unknown-kid refetch on or off.
    pub fn with_refetch_on_unknown_kid(mut self, on: bool) -> Self {
        self.refetch_on_unknown_kid = on;
        self
    }
    /// Sets the shortest interval between unknown-kid refetches of one URL.
    pub fn with_unknown_kid_interval(mut self, interval: Duration) -> Self {
        self.unknown_kid_interval = interval;
        self
    }
    /// Sets how long past expiry a cached set may be served while the host fails (the resource
    /// verifier uses 1 h).
    pub fn with_stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }
    /// Sets the back-off after a failed fetch.
    pub fn with_error_backoff(mut self, backoff: Duration) -> Self {
        self.error_backoff = backoff;
        self
    }

    /// Cache lifetime for a response with this `Cache-Control` header: `max-age`, else the
    /// default, clamped to `min_ttl..=max_ttl`; `no-store`/`no-cache` give the floor.
    pub fn ttl_for(&self, cache_control: Option<&str>) -> Duration {
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
pub enum CacheDirective {
    /// `max-age=N` (`s-maxage` is for shared caches and ignored).
    MaxAge(u64),
    /// `no-store` or `no-cache`: as short as the floor allows.
    NoStore,
    /// Nothing about freshness.
    None,
}

/// Parses the freshness part of a `Cache-Control` header.
pub fn parse_cache_control(value: &str) -> CacheDirective {
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
    fn weakening_needs_the_dangerous_setters() {
        let p = FetchPolicy::default()
            .with_max_body_bytes(10 * 1024 * 1024)
            .with_min_ttl(Duration::ZERO);
        assert_eq!(p.max_body_bytes(), MAX_JWKS_BYTES);
        assert_eq!(p.min_ttl(), MIN_TTL_FLOOR);
        assert_eq!(p.ttl_for(Some("max-age=0")), MIN_TTL_FLOOR);
        let p = FetchPolicy::default()
            .dangerous_max_body_bytes(10 * 1024 * 1024)
            .dangerous_min_ttl(Duration::ZERO);
        assert_eq!(p.max_body_bytes(), 10 * 1024 * 1024);
        assert_eq!(p.ttl_for(Some("max-age=0")), Duration::ZERO);
        // Tightening is free.
        assert_eq!(
            FetchPolicy::default()
                .with_max_body_bytes(1024)
                .max_body_bytes(),
            1024
        );
    }
}
