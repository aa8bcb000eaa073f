//! [`TokenSource`]: a shared token cache for long-running services, with refresh-ahead,
//! single-flight fetching and graceful degradation when the token endpoint is down.
//!
//! # What callers see
//!
//! - A cached token before its refresh point: returned in nanoseconds, without a lock (see
//!   `local`), from any number of threads.
//! - Between the refresh point and the serve-until point: the cached token, at once; the first
//!   such caller starts **one** background refresh (a spawned task), everyone else just gets the
//!   cached token.
//! - No servable token (cold start, expired, invalidated): callers wait for the one fetch in
//!   flight, starting it if there is none.
//!
//! The rule for the three points is on [`RefreshPolicy`].
//!
//! # Failures
//!
//! A failed refresh while the cached token is servable changes nothing for callers: they keep
//! getting it, and refreshes are retried with backoff (honouring `Retry-After`), at most
//! [`RefreshPolicy::max_refresh_attempts`] times. Once the token is past its serve-until point it
//! is dropped and never handed out: callers get the error of the last attempt, and one new
//! attempt is made each time the backoff has elapsed (no stampede on a failing endpoint).
//!
//! Refreshes are driven by callers, not by timers: with no callers nothing is fetched, and all
//! timing comes from the injected [`Clock`], so tests can run hours of token lifetimes with a
//! [`m2m_core::clock::ManualClock`] in milliseconds.
//!
//! # Single flight
//!
//! The fetch runs in a spawned task that publishes its result through a `tokio::sync::watch`
//! channel. `watch` rather than `Notify`: the value stays in the channel, so a caller that
//! subscribes just before the result lands and polls just after still sees it (no lost wake-up),
//! and every waiter gets a clone of the result. A spawned task rather than a future polled by the
//! first caller: if that caller is cancelled (a request timeout), the fetch still completes for
//! everyone else. The bookkeeping sits behind a `std::sync::Mutex` that is only held for a few
//! field updates and never across an `.await`.

mod fetch;
mod local;
mod state;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use m2m_core::clock::{Clock, SystemClock, UnixTime};
use tokio::sync::watch;

use crate::authorization::{ApiAuthorization, api_authorization};
use crate::client::TokenClient;
use crate::dpop::DpopKey;
use crate::error::{ConfigError, Error};
use crate::response::TokenResponse;

pub use fetch::FetchToken;
pub use state::{RefreshPolicy, Schedule, jwt_lifetime};

/// Process-wide token ids: never reused, so a per-thread copy can never be mistaken for another
/// source's or a later token. 0 means "no token".
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An access token handed out by a [`TokenSource`]: cheap to clone (an `Arc` inside). `Debug`
/// prints `[redacted]`; [`Token::authorization`] gives the headers of an API request.
///
/// A token the endpoint issued as `token_type: DPoP` to a client with a [`DpopKey`] knows that
/// key ([`Token::dpop_key`]): it is sent as `DPoP <token>` with a fresh proof per request. Any
/// other token (including a `Bearer` answer to a DPoP request) is a bearer token.
#[derive(Clone)]
pub struct Token {
    secret: Arc<str>,
    expires_at: UnixTime,
    id: u64,
    dpop: Option<DpopKey>,
}

impl Token {
    /// The token itself. Never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// When the token expires, as the client computed it (receipt time + lifetime).
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }

    /// The `Authorization` header value `Bearer <token>`, whatever the token's type; for a
    /// DPoP-bound token use [`Token::authorization`], which adds the proof.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.secret)
    }

    /// The DPoP key the token is bound to (`token_type: DPoP`), if it is.
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.dpop.as_ref()
    }

    /// Whether the token is DPoP-bound (and so useless without a proof from its key).
    pub fn is_dpop(&self) -> bool {
        self.dpop.is_some()
    }

    /// The headers of one API request `method url` with this token: `DPoP <token>` and a fresh
    /// proof (with `ath`, and `nonce` when the API gave one) for a DPoP-bound token, else
    /// `Bearer <token>` (the rule is [`crate::authorization::api_authorization`]).
    pub fn authorization(
        &self,
        method: &str,
        url: &str,
        nonce: Option<&str>,
        now: UnixTime,
    ) -> Result<ApiAuthorization, Error> {
        api_authorization(&self.secret, self.dpop.as_ref(), method, url, nonce, now)
    }

    /// A copy with its own allocation (for per-thread copies).
    fn deep_copy(&self) -> Token {
        Token {
            secret: Arc::from(&*self.secret),
            dpop: self.dpop.clone(),
            ..*self
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("dpop", &self.dpop)
            .finish()
    }
}

/// Why a [`TokenSource`] could not hand out a token.
///
/// Cloneable (an `Arc` around the fetch [`Error`]) because one failed fetch answers every caller
/// that waited for it.
#[derive(Clone, Debug)]
pub struct TokenSourceError(Arc<Error>);

impl TokenSourceError {
    /// The underlying error of the last fetch.
    pub fn error(&self) -> &Error {
        &self.0
    }

    /// Whether a later attempt can succeed (see [`Error::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.0.is_retryable()
    }

    /// The token endpoint's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.0.retry_after()
    }
}

impl fmt::Display for TokenSourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not get an access token: {}", self.0)
    }
}

impl std::error::Error for TokenSourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

impl From<Error> for TokenSourceError {
    fn from(e: Error) -> Self {
        TokenSourceError(Arc::new(e))
    }
}

/// A shared, self-refreshing access-token cache. Clone it freely: clones share one cache.
///
/// ```no_run
/// # async fn run(client: m2m_client::TokenClient) -> Result<(), Box<dyn std::error::Error>> {
/// use m2m_client::source::TokenSource;
///
/// let tokens = TokenSource::new(client);
/// let token = tokens.token().await?; // fetched once, then served from memory
/// let _header = token.bearer();
/// # Ok(()) }
/// ```
///
/// Needs a tokio runtime (fetches run in spawned tasks); see
/// `integrations::blocking::BlockingTokenSource` (feature `blocking`) for programs without one.
#[derive(Clone)]
pub struct TokenSource {
    shared: Arc<Shared>,
}

struct Shared {
    fetcher: Arc<dyn FetchToken>,
    clock: Arc<dyn Clock>,
    policy: RefreshPolicy,
    /// Id of the current token (0: none). The hot path only reads this and its thread's copy.
    current_id: AtomicU64,
    control: Mutex<Control>,
}

/// Everything the slow path decides on. Guarded by a std mutex, held for field updates only.
#[derive(Default)]
struct Control {
    current: Option<Arc<Cached>>,
    /// The fetch in flight, if any: its result arrives on this channel.
    in_flight: Option<watch::Receiver<Option<Outcome>>>,
    /// Consecutive failed fetches (reset by a success).
    failures: u32,
    /// No attempt before this instant (after a failure).
    next_attempt_at: Option<UnixTime>,
    /// The last failure, answered to callers that arrive during the backoff with no token.
    last_error: Option<TokenSourceError>,
}

struct Cached {
    token: Token,
    schedule: Schedule,
}

type Outcome = Result<Token, TokenSourceError>;

/// What the slow path does for one caller.
enum Decision {
    Serve(Token),
    Fail(TokenSourceError),
    Wait(watch::Receiver<Option<Outcome>>),
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("TokenSource")
            .field("fetcher", &s.fetcher)
            .field("clock", &s.clock)
            .field("policy", &s.policy)
            .field("cached", &(s.current_id.load(Ordering::Relaxed) != 0))
            .finish()
    }
}

impl From<TokenClient> for TokenSource {
    fn from(client: TokenClient) -> Self {
        TokenSource::new(client)
    }
}

impl TokenSource {
    /// A cache in front of `fetcher` (usually a [`TokenClient`]) with the system clock and the
    /// default [`RefreshPolicy`].
    pub fn new(fetcher: impl FetchToken + 'static) -> Self {
        TokenSource::builder(Arc::new(fetcher)).build()
    }

    /// Starts a configuration with a custom clock or policy.
    pub fn builder(fetcher: Arc<dyn FetchToken>) -> TokenSourceBuilder {
        TokenSourceBuilder {
            fetcher,
            clock: Arc::new(SystemClock),
            policy: RefreshPolicy::default(),
        }
    }

    /// A valid token: the cached one if it is before its serve-until point (starting one
    /// background refresh once it is past its refresh point), else the result of the one fetch
    /// in flight. Never a token past its serve-until point.
    pub async fn token(&self) -> Result<Token, TokenSourceError> {
        let now = self.shared.clock.now();
        if let Some(token) = self.fresh(now) {
            return Ok(token);
        }
        self.slow().await
    }

    /// The cached token if it is before its refresh point; never waits, never fetches. For
    /// synchronous fast paths that fall back to [`TokenSource::token`].
    pub fn fresh_token(&self) -> Option<Token> {
        self.fresh(self.shared.clock.now())
    }

    /// Drops the cached token, so the next caller fetches a new one. Call it when the resource
    /// server answers 401 to a token this source handed out.
    pub fn invalidate(&self) {
        let mut ctl = self.shared.lock();
        ctl.current = None;
        self.shared.current_id.store(0, Ordering::Release);
    }

    /// Like [`TokenSource::invalidate`], but only if `token` is still the cached one: a 401 to
    /// an old token does not throw away a newer token fetched in the meantime.
    pub fn invalidate_token(&self, token: &Token) {
        let mut ctl = self.shared.lock();
        if ctl.current.as_ref().is_some_and(|c| c.token.id == token.id) {
            ctl.current = None;
            self.shared.current_id.store(0, Ordering::Release);
        }
    }

    /// Waits until the fetch in flight, if any, has finished and its result is in the cache.
    /// Useful before shutting down, and in tests that step a manual clock.
    pub async fn wait_for_refresh(&self) {
        let in_flight = self.shared.lock().in_flight.clone();
        if let Some(mut rx) = in_flight {
            // Closed without an answer also means "no longer in flight".
            let _ = rx.wait_for(Option::is_some).await;
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &RefreshPolicy {
        &self.shared.policy
    }

    /// The time on the source's clock (what DPoP proofs for its tokens are dated with).
    pub fn now(&self) -> UnixTime {
        self.shared.clock.now()
    }

    /// The hot path: this thread's copy of the current token, if before its refresh point.
    fn fresh(&self, now: UnixTime) -> Option<Token> {
        let id = self.shared.current_id.load(Ordering::Acquire);
        if id == 0 {
            return None;
        }
        match local::get(id, now) {
            local::Lookup::Fresh(token) => Some(token),
            local::Lookup::Due => None,
            local::Lookup::Missing => {
                // First use on this thread: copy the current token (under the lock, once).
                let cached = self.shared.lock().current.clone()?;
                (cached.token.id == id && now < cached.schedule.refresh_at)
                    .then(|| local::put(&cached.token, cached.schedule.refresh_at))
            }
        }
    }

    async fn slow(&self) -> Outcome {
        let mut rx = {
            let now = self.shared.clock.now();
            let mut ctl = self.shared.lock();
            match self.decide(&mut ctl, now) {
                Decision::Serve(token) => return Ok(token),
                Decision::Fail(e) => return Err(e),
                Decision::Wait(rx) => rx,
            }
        };
        match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or_else(|| Err(cancelled())),
            // The fetch task was dropped (runtime shutting down) without an answer.
            Err(_) => Err(cancelled()),
        }
    }

    fn decide(&self, ctl: &mut Control, now: UnixTime) -> Decision {
        let policy = &self.shared.policy;
        // A fetch task that vanished without answering must not block everyone forever.
        if ctl
            .in_flight
            .as_ref()
            .is_some_and(|rx| rx.has_changed().is_err())
        {
            ctl.in_flight = None;
        }
        let may_attempt = ctl.next_attempt_at.is_none_or(|t| now >= t);
        if let Some(cached) = ctl.current.clone().filter(|c| now < c.schedule.serve_until) {
            if now >= cached.schedule.refresh_at
                && ctl.in_flight.is_none()
                && may_attempt
                && ctl.failures < policy.max_refresh_attempts
            {
                // Refresh ahead in the background; this caller does not wait for it.
                if let Err(e) = self.start_fetch(ctl) {
                    tracing::warn!(error = %e, "cannot start a background token refresh");
                }
            }
            return Decision::Serve(cached.token.clone());
        }
        if ctl.current.take().is_some() {
            self.shared.current_id.store(0, Ordering::Release);
            tracing::debug!("cached access token reached its serve-until point; dropped");
        }
        if let Some(rx) = &ctl.in_flight {
            return Decision::Wait(rx.clone());
        }
        if !may_attempt && let Some(e) = &ctl.last_error {
            return Decision::Fail(e.clone());
        }
        match self.start_fetch(ctl) {
            Ok(rx) => Decision::Wait(rx),
            Err(e) => Decision::Fail(e),
        }
    }

    fn start_fetch(
        &self,
        ctl: &mut Control,
    ) -> Result<watch::Receiver<Option<Outcome>>, TokenSourceError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            TokenSourceError::from(Error::Config(ConfigError::Invalid(
                "TokenSource needs a tokio runtime to fetch tokens (use BlockingTokenSource \
                 in programs without one)"
                    .to_owned(),
            )))
        })?;
        let (tx, rx) = watch::channel(None);
        ctl.in_flight = Some(rx.clone());
        let shared = Arc::clone(&self.shared);
        runtime.spawn(async move { shared.run_fetch(tx).await });
        Ok(rx)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Control> {
        // Nothing panics while holding the lock; if something did, the state is still coherent.
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn run_fetch(self: Arc<Self>, tx: watch::Sender<Option<Outcome>>) {
        let result = self.fetcher.fetch().await;
        let now = self.clock.now();
        let result = result.and_then(|response| self.accept(&response, now));
        let reply = {
            let mut ctl = self.lock();
            ctl.in_flight = None;
            match result {
                Ok(cached) => {
                    ctl.failures = 0;
                    ctl.next_attempt_at = None;
                    ctl.last_error = None;
                    let token = cached.token.clone();
                    self.current_id.store(token.id, Ordering::Release);
                    ctl.current = Some(Arc::new(cached));
                    Ok(token)
                }
                Err(e) => {
                    ctl.failures = ctl.failures.saturating_add(1);
                    let delay = self.policy.retry_delay(
                        ctl.failures,
                        e.retry_after(),
                        rand::random::<f64>(),
                    );
                    ctl.next_attempt_at = Some(now.add(delay));
                    let still_serving = ctl
                        .current
                        .as_ref()
                        .is_some_and(|c| now < c.schedule.serve_until);
                    tracing::warn!(
                        failures = ctl.failures,
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        still_serving_cached_token = still_serving,
                        error = %e,
                        "access token fetch failed"
                    );
                    let e = TokenSourceError::from(e);
                    ctl.last_error = Some(e.clone());
                    Err(e)
                }
            }
        };
        tx.send_replace(Some(reply));
    }

    /// The key a fresh token is bound to: the fetcher's DPoP key when the endpoint answered
    /// `token_type: DPoP`. A `Bearer` answer to a DPoP request was already logged by the token
    /// client; the token is sent as a bearer token.
    fn bound_key(&self, response: &TokenResponse) -> Option<DpopKey> {
        if !response.token_type_is(m2m_core::wire::DPOP) {
            return None;
        }
        let key = self.fetcher.dpop_key();
        if key.is_none() {
            tracing::warn!(
                "the token endpoint issued a DPoP-bound token, but the fetcher has no DPoP key: \
                 the token is sent as a bearer token and the API will likely refuse it"
            );
        }
        key
    }

    /// Schedules a fresh response, refusing one that is not servable even now.
    fn accept(&self, response: &TokenResponse, now: UnixTime) -> Result<Cached, Error> {
        let secret = response.access_token().secret();
        let lifetime = self.policy.lifetime(response.expires_in(), secret, now);
        let schedule = self.policy.schedule(now, lifetime, rand::random::<f64>());
        if schedule.serve_until <= now {
            return Err(Error::InvalidResponse {
                status: 200,
                reason: format!(
                    "the access token expires too soon to be used (lifetime {} s)",
                    lifetime.as_secs()
                ),
            });
        }
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            refresh_in_ms = schedule.refresh_at.since(now).as_millis() as u64,
            "access token cached"
        );
        Ok(Cached {
            token: Token {
                secret: Arc::from(secret),
                expires_at: schedule.expires_at,
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                dpop: self.bound_key(response),
            },
            schedule,
        })
    }
}

fn cancelled() -> TokenSourceError {
    TokenSourceError::from(Error::Transport {
        kind: crate::error::TransportKind::Other,
        message: "the token fetch was cancelled (runtime shutting down?)".to_owned(),
    })
}

/// Configuration of a [`TokenSource`].
pub struct TokenSourceBuilder {
    fetcher: Arc<dyn FetchToken>,
    clock: Arc<dyn Clock>,
    policy: RefreshPolicy,
}

impl fmt::Debug for TokenSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSourceBuilder")
            .field("fetcher", &self.fetcher)
            .field("clock", &self.clock)
            .field("policy", &self.policy)
            .finish()
    }
}

impl TokenSourceBuilder {
    /// The clock every schedule is computed with (default: system time).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The refresh and retry rules (default: [`RefreshPolicy::default`]).
    pub fn policy(mut self, policy: RefreshPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Builds the source. Nothing is fetched until the first [`TokenSource::token`].
    pub fn build(self) -> TokenSource {
        TokenSource {
            shared: Arc::new(Shared {
                fetcher: self.fetcher,
                clock: self.clock,
                policy: self.policy,
                current_id: AtomicU64::new(0),
                control: Mutex::new(Control::default()),
            }),
        }
    }
}
