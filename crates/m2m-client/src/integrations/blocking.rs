//! [`BlockingTokenSource`]: a [`TokenSource`] for programs without an async runtime. It owns a
//! small current-thread tokio runtime driven by one background thread; a cached token is
//! returned without touching it. With whatever blocking HTTP client the program uses,
//! [`BlockingTokenSource::authorize`] gives a request's headers (a fresh DPoP proof for a
//! DPoP-bound token) and [`BlockingTokenSource::answered`] reads the API's answer (a nonce to
//! retry with once, a refused token to replace), by the rule every integration follows.

use std::fmt;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::authorization::{ApiAuthorization, ApiCalls, Retry};
use crate::error::{Error, TransportKind};
use crate::source::{FetchToken, Token, TokenSource, TokenSourceBuilder, TokenSourceError};

/// A blocking token cache. Do not call [`BlockingTokenSource::token`] from async code (it
/// blocks the thread); use the inner [`TokenSource`] there.
///
/// ```no_run
/// # fn run(client: m2m_client::TokenClient) -> Result<(), Box<dyn std::error::Error>> {
/// use m2m_client::integrations::blocking::BlockingTokenSource;
///
/// let tokens = BlockingTokenSource::new(client)?;
/// let token = tokens.token()?;
/// let url = "https://api.example/v1/things";
/// let auth = tokens.authorize(&token, "GET", url)?;
/// // Send the request with `Authorization: {auth.authorization()}` and, when
/// // `auth.dpop()` is Some, that proof in the `DPoP` header; then, with the answer:
/// use m2m_client::authorization::Retry;
/// match tokens.answered(&token, url, 401, ["DPoP error=\"use_dpop_nonce\""], Some("n-1")) {
///     Retry::No => {}                 // done
///     Retry::WithNonce => {}          // authorize(&token, …) again and resend once
///     Retry::WithNewToken => {}       // token()?, authorize(…) and resend once
/// }
/// # Ok(()) }
/// ```
pub struct BlockingTokenSource {
    source: TokenSource,
    calls: ApiCalls,
    runtime: tokio::runtime::Handle,
    /// Dropping it lets the runtime thread finish.
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for BlockingTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingTokenSource")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl BlockingTokenSource {
    /// A blocking cache in front of `fetcher` with default settings.
    pub fn new(fetcher: impl FetchToken + 'static) -> std::io::Result<Self> {
        Self::from_builder(TokenSource::builder(std::sync::Arc::new(fetcher)))
    }

    /// A blocking cache configured through a [`TokenSourceBuilder`] (clock, policy).
    pub fn from_builder(builder: TokenSourceBuilder) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("m2m-token-source".to_owned())
            .spawn(move || {
                // Drives the runtime's IO and timers until the source is dropped.
                let _ = runtime.block_on(stopped);
            })?;
        // Build inside the runtime context so nothing the builder creates misses a reactor.
        let source = {
            let _guard = handle.enter();
            builder.build()
        };
        Ok(BlockingTokenSource {
            calls: ApiCalls::new(source.clone()),
            source,
            runtime: handle,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// A valid token, fetching one (blocking this thread) if none is cached.
    pub fn token(&self) -> Result<Token, TokenSourceError> {
        if let Some(token) = self.source.fresh_token() {
            return Ok(token);
        }
        let (tx, rx) = oneshot::channel();
        let source = self.source.clone();
        self.runtime.spawn(async move {
            let _ = tx.send(source.token().await);
        });
        rx.blocking_recv().unwrap_or_else(|_| {
            Err(TokenSourceError::from(Error::Transport {
                kind: TransportKind::Other,
                message: "the token source's runtime thread has stopped".to_owned(),
            }))
        })
    }

    /// The headers of one API request `method url` with `token`: `Bearer`, or `DPoP` with a
    /// fresh proof carrying the API's latest nonce (see [`crate::authorization`]).
    pub fn authorize(
        &self,
        token: &Token,
        method: &str,
        url: &str,
    ) -> Result<ApiAuthorization, Error> {
        self.calls.authorize(token, method, url)
    }

    /// Reads the API's answer to a request made with `token` (its status, `WWW-Authenticate`
    /// values and `DPoP-Nonce`): keeps a nonce, drops a refused token, and says whether the
    /// request is worth one more try (after a first attempt only).
    pub fn answered<'a>(
        &self,
        token: &Token,
        url: &str,
        status: u16,
        www_authenticate: impl IntoIterator<Item = &'a str>,
        dpop_nonce: Option<&str>,
    ) -> Retry {
        self.calls
            .answered(token, url, status, www_authenticate, dpop_nonce)
    }

    /// Drops the cached token (after a 401 from the API).
    pub fn invalidate(&self) {
        self.source.invalidate();
    }

    /// The async source inside, for the parts of a program that do have a runtime.
    pub fn source(&self) -> &TokenSource {
        &self.source
    }
}

impl Drop for BlockingTokenSource {
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
