//! The verifier: a token in, a [`Caller`] or a [`Refusal`] out. It runs m2m-core's access-token
//! check order (the repository's `docs/protocol.md`, `## Access-token checks`) — the rules live
//! there, not here — and supplies what the pure checks cannot: the issuer's keys (through
//! [`crate::keys`] and m2m-discovery's [`JwksFetcher`]), the verified-token cache, introspection
//! for opaque tokens, and the clock.

use std::sync::Arc;
use std::time::Duration;

use m2m_core::alg::Algorithm;
use m2m_core::clock::{Clock, SystemClock, UnixTime};
use m2m_core::ids::{Issuer, KeySet};
use m2m_core::validate::{
    AccessTokenConfig, AccessTokenReason, AccessTokenValidator, Presentation, UnsignedAccessToken,
};
use m2m_discovery::{FetchPolicy, HttpClient, JwksFetcher};

use crate::cache::{Cached, VerifiedBy, VerifiedCache, token_hash};
use crate::error::Refusal;
use crate::identity::Caller;
use crate::introspect::{Answer, Introspection, NEGATIVE_TTL, POSITIVE_TTL};
use crate::keys::{IssuerKeys, RECHECK_INTERVAL, SNAPSHOT_MAX_AGE, TrustedIssuer};

/// Default size of the verified-token cache: a resource server sees a few thousand distinct
/// clients' tokens per lifetime at most; each entry is a few hundred bytes.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Default upper bound of a cache entry's life, whatever the token's `exp`: a key removed from
/// the JWKS is noticed by the recheck, but this bounds how long any single verification is
/// reused.
pub const DEFAULT_CACHE_BOUND: Duration = Duration::from_secs(3600);

/// Configuration errors of [`VerifierBuilder::build`].
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No trusted issuer was given.
    #[error("a verifier needs at least one trusted issuer")]
    NoIssuer,
    /// The leeway is above 300 s (use the `dangerous_` setter).
    #[error("{0}")]
    Leeway(m2m_core::Error),
    /// The HTTP client for discovery and keys could not be built.
    #[error("{0}")]
    Http(m2m_discovery::Error),
}

/// Builds a [`Verifier`]. The audience is required up front: there is no default, as a resource
/// server that forgot it would accept tokens meant for any other service.
#[derive(Debug)]
pub struct VerifierBuilder {
    audience: String,
    issuers: Vec<TrustedIssuer>,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Option<Duration>,
    dangerous_leeway: Option<Duration>,
    dangerous_accept_jwt_typ: bool,
    fetch_policy: FetchPolicy,
    clock: Arc<dyn Clock>,
    cache_capacity: usize,
    cache_bound: Duration,
    introspection: Option<Introspection>,
    introspect_jwts: bool,
}

impl VerifierBuilder {
    /// Trusts tokens from `issuer` too (each issuer has its own keys).
    pub fn issuer(mut self, issuer: TrustedIssuer) -> Self {
        self.issuers.push(issuer);
        self
    }
    /// Restricts the accepted algorithms (default: every asymmetric one m2m knows; `none` and
    /// HMAC never).
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = Some(algorithms.to_vec());
        self
    }
    /// The clock-skew allowance (default 30 s, at most 300 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }
    /// Any leeway, past the 300 s limit.
    pub fn dangerous_leeway(mut self, leeway: Duration) -> Self {
        self.dangerous_leeway = Some(leeway);
        self
    }
    /// Also accept `typ` `JWT` or no `typ`, for issuers that do not follow RFC 9068 (Entra ID v1,
    /// Auth0 without the RFC 9068 profile). Weakens the check that stops an ID token signed by
    /// the same key being used as an access token.
    pub fn dangerous_accept_jwt_typ(mut self) -> Self {
        self.dangerous_accept_jwt_typ = true;
        self
    }
    /// How keys and metadata are fetched (timeouts, caps, cache bounds, stale-if-error).
    pub fn fetch_policy(mut self, policy: FetchPolicy) -> Self {
        self.fetch_policy = policy;
        self
    }
    /// The clock (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Size of the verified-token cache (0 turns it off).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }
    /// Longest a verification is reused (entries live until min(`exp`, this)).
    pub fn cache_bound(mut self, bound: Duration) -> Self {
        self.cache_bound = bound;
        self
    }
    /// Opaque (non-JWT) tokens are checked at this RFC 7662 endpoint; without it they are
    /// refused as malformed.
    pub fn introspection(mut self, introspection: Introspection) -> Self {
        self.introspection = Some(introspection);
        self
    }

    /// Send JWTs to the introspection endpoint too, instead of checking them locally: revocation
    /// then takes effect within [`POSITIVE_TTL`](crate::introspect::POSITIVE_TTL), at the cost of
    /// one introspection per token per that interval. Needs [`VerifierBuilder::introspection`].
    pub fn introspect_jwts(mut self) -> Self {
        self.introspect_jwts = true;
        self
    }

    /// The verifier.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        let mut issuers = self.issuers.into_iter();
        let first = issuers.next().ok_or(ConfigError::NoIssuer)?;
        let rest: Vec<TrustedIssuer> = issuers.collect();
        let mut config = AccessTokenConfig::new(first.issuer().clone(), self.audience.clone());
        for i in &rest {
            config.add_issuer(i.issuer().clone());
        }
        if let Some(algs) = &self.algorithms {
            config.set_algorithms(algs);
        }
        if let Some(leeway) = self.leeway {
            config.set_leeway(leeway).map_err(ConfigError::Leeway)?;
        }
        if let Some(leeway) = self.dangerous_leeway {
            config.dangerous_leeway(leeway);
        }
        if self.dangerous_accept_jwt_typ {
            config.dangerous_accept_jwt_typ();
        }
        let http = HttpClient::new(self.fetch_policy.timeout()).map_err(ConfigError::Http)?;
        let fetcher = JwksFetcher::with_http(http.clone(), self.fetch_policy, self.clock.clone());
        let issuers = std::iter::once(first)
            .chain(rest)
            .map(|t| Arc::new(IssuerKeys::new(t)))
            .collect();
        Ok(Verifier {
            inner: Arc::new(Inner {
                validator: AccessTokenValidator::new(config),
                audience: self.audience,
                issuers,
                fetcher,
                http,
                clock: self.clock,
                cache: VerifiedCache::new(self.cache_capacity),
                cache_bound: self.cache_bound,
                introspection: self.introspection,
                introspect_jwts: self.introspect_jwts,
            }),
        })
    }
}

/// Verifies access tokens for one audience. Cheap to clone (shared state); one per API.
#[derive(Clone, Debug)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    validator: AccessTokenValidator,
    audience: String,
    issuers: Vec<Arc<IssuerKeys>>,
    fetcher: JwksFetcher,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    cache: VerifiedCache,
    cache_bound: Duration,
    introspection: Option<Introspection>,
    introspect_jwts: bool,
}

impl Verifier {
    /// A builder for tokens addressed to `audience` (this API's resource identifier).
    pub fn builder(audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            audience: audience.into(),
            issuers: Vec::new(),
            algorithms: None,
            leeway: None,
            dangerous_leeway: None,
            dangerous_accept_jwt_typ: false,
            fetch_policy: FetchPolicy::default(),
            clock: Arc::new(SystemClock),
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            cache_bound: DEFAULT_CACHE_BOUND,
            introspection: None,
            introspect_jwts: false,
        }
    }

    /// The audience tokens must carry.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }
    /// The trusted issuers, in configuration order.
    pub fn issuers(&self) -> Vec<Issuer> {
        self.inner
            .issuers
            .iter()
            .map(|i| i.trusted.issuer().clone())
            .collect()
    }
    /// How many JWKS downloads were started (metrics, tests).
    pub fn jwks_fetch_count(&self) -> u64 {
        self.inner.fetcher.fetch_count()
    }
    /// How many verified tokens are cached (metrics, tests).
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.len()
    }

    /// Verifies a Bearer `token` and checks `required_scopes`.
    pub async fn verify(&self, token: &str, required_scopes: &[&str]) -> Result<Caller, Refusal> {
        self.verify_presented(token, Presentation::Bearer, required_scopes)
            .await
    }

    /// Verifies `token` as it was `presented` and checks `required_scopes`. With
    /// [`Presentation::DpopProof`] a token bound with `cnf` passes; checking the proof against
    /// its `cnf.jkt` is then the caller's job ([`crate::dpop::DpopSettings::check_proof`]), so
    /// such a caller passes no scopes here and checks them after the proof.
    pub async fn verify_presented(
        &self,
        token: &str,
        presented: Presentation,
        required_scopes: &[&str],
    ) -> Result<Caller, Refusal> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let hash = token_hash(token);
        match inner.cache.get(&hash, now) {
            Some(Cached::Valid(caller)) => {
                let claims = caller.access_token_claims();
                claims.check_presentation(presented)?;
                claims.require_scopes(required_scopes)?;
                return Ok((*caller).clone());
            }
            Some(Cached::Inactive) => {
                return Err(Refusal::token(
                    AccessTokenReason::Malformed,
                    "the token is not active",
                ));
            }
            None => {}
        }
        if (inner.introspect_jwts || !looks_like_jws(token)) && inner.introspection.is_some() {
            return self.introspect(token, hash, required_scopes, now).await;
        }
        let unsigned = inner.validator.check_unsigned(token)?;
        let (index, issuer) = inner
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.trusted.issuer() == unsigned.issuer())
            .ok_or_else(|| {
                Refusal::token(
                    AccessTokenReason::IssuerUntrusted,
                    "access token 'iss' is not a trusted issuer",
                )
            })?;
        let keys = self.keys_for(index, issuer, &unsigned).await?;
        let kid = unsigned.kid().map(str::to_owned);
        // Verified with the sender constraint left open and no scopes: the cached claims serve
        // every route and presentation, each applying the presentation rule and its own scopes
        // through the same core rules (below, and on every cache hit above).
        let claims =
            inner
                .validator
                .check_signed(unsigned, &keys, Presentation::DpopProof, &[], now)?;
        let thumbprint = match &kid {
            Some(_) => String::new(),
            None => keys
                .as_slice()
                .first()
                .map(|k| k.key.thumbprint())
                .unwrap_or_default(),
        };
        let until = claims.exp.min(now.add(inner.cache_bound));
        let caller = Caller::new(claims);
        inner.cache.insert(
            hash,
            Cached::Valid(Arc::new(caller.clone())),
            until,
            VerifiedBy::Key {
                issuer: index,
                kid,
                thumbprint,
            },
            now,
        );
        let claims = caller.access_token_claims();
        claims.check_presentation(presented)?;
        claims.require_scopes(required_scopes)?;
        Ok(caller)
    }

    /// The issuer's keys for this token: the snapshot when it has the `kid` (a background
    /// recheck when it is old), else the fetcher (one refetch for an unknown kid, single flight).
    async fn keys_for(
        &self,
        index: usize,
        issuer: &Arc<IssuerKeys>,
        token: &UnsignedAccessToken,
    ) -> Result<KeySet, Refusal> {
        if let Some(keys) = issuer.static_keys() {
            return Ok(keys.clone());
        }
        let now = self.inner.clock.now();
        let kid = token.kid();
        if let Some(snap) = issuer.snapshot() {
            let has_kid = kid.is_none_or(|k| snap.keys.by_kid(k).is_some());
            let age = now.since(snap.checked_at);
            // Past SNAPSHOT_MAX_AGE the request asks the fetcher itself, so a snapshot nobody
            // rechecked (no traffic) is never served beyond the fetcher's stale-if-error window.
            if has_kid && age < SNAPSHOT_MAX_AGE {
                if age >= RECHECK_INTERVAL && issuer.start_recheck() {
                    self.spawn_recheck(index, Arc::clone(issuer));
                }
                return Ok(snap.keys);
            }
        }
        match self.fetch(issuer, kid).await {
            Ok(keys) => {
                if issuer.store(Some(keys.clone()), self.inner.clock.now()) {
                    self.inner.cache.retain_keys(index, Some(&keys));
                }
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!(issuer = %issuer.trusted.issuer(), error = %e, "issuer keys unavailable");
                Err(Refusal::Unavailable(e.to_string()))
            }
        }
    }

    async fn fetch(
        &self,
        issuer: &IssuerKeys,
        kid: Option<&str>,
    ) -> Result<KeySet, m2m_discovery::Error> {
        let url = issuer
            .jwks_uri(&self.inner.http, self.inner.fetcher.policy().url_policy())
            .await?;
        self.inner.fetcher.keys(&url, kid).await
    }

    /// Asks the fetcher in the background whether the keys changed; requests keep using the
    /// snapshot meanwhile. When the fetcher has nothing usable left (stale-if-error window
    /// over), the snapshot is dropped and its cached tokens with it.
    fn spawn_recheck(&self, index: usize, issuer: Arc<IssuerKeys>) {
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.fetch(&issuer, None).await;
            let now = this.inner.clock.now();
            match result {
                Ok(keys) => {
                    if issuer.store(Some(keys.clone()), now) {
                        this.inner.cache.retain_keys(index, Some(&keys));
                    }
                }
                Err(e) => {
                    tracing::warn!(issuer = %issuer.trusted.issuer(), error = %e, "issuer keys unusable; refusing its tokens until they are back");
                    issuer.store(None, now);
                    this.inner.cache.retain_keys(index, None);
                }
            }
            issuer.end_recheck();
        });
    }

    async fn introspect(
        &self,
        token: &str,
        hash: [u8; 32],
        required_scopes: &[&str],
        now: UnixTime,
    ) -> Result<Caller, Refusal> {
        let inner = &self.inner;
        let Some(introspection) = &inner.introspection else {
            return Err(Refusal::token(
                AccessTokenReason::Malformed,
                "access token is not a JWT",
            ));
        };
        if token.len() > m2m_core::validate::access_token::MAX_ACCESS_TOKEN_LEN {
            return Err(Refusal::token(
                AccessTokenReason::TooLarge,
                "access token is too long",
            ));
        }
        let issuers = self.issuers();
        match introspection
            .ask(token, &issuers, &inner.audience, now)
            .await?
        {
            Answer::Active(claims) => {
                let until = claims
                    .exp
                    .min(now.add(POSITIVE_TTL))
                    .min(now.add(inner.cache_bound));
                let caller = Caller::new(*claims);
                inner.cache.insert(
                    hash,
                    Cached::Valid(Arc::new(caller.clone())),
                    until,
                    VerifiedBy::Introspection,
                    now,
                );
                caller
                    .access_token_claims()
                    .require_scopes(required_scopes)?;
                Ok(caller)
            }
            Answer::Inactive(refusal) => {
                inner.cache.insert(
                    hash,
                    Cached::Inactive,
                    now.add(NEGATIVE_TTL),
                    VerifiedBy::Introspection,
                    now,
                );
                Err(refusal)
            }
        }
    }
}

/// Whether `token` has the shape of a compact JWS (three dot-separated parts): JWTs are checked
/// locally, anything else goes to introspection when configured.
fn looks_like_jws(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}
