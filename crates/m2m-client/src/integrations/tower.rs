//! [`BearerLayer`] / [`BearerService`]: a tower middleware that puts a [`TokenSource`] token on
//! every `http::Request`, for hyper, tonic and axum clients: `Authorization: Bearer …`, or for a
//! DPoP-bound token `Authorization: DPoP …` with a fresh proof per request (the rule is in
//! `crate::authorization`).
//!
//! No retry by default: a generic `http::Request` body cannot be replayed. The service drops the
//! cached token when the inner service answers 401 and remembers a DPoP nonce the API sends, so
//! the next request carries a fresh token or the nonce. [`BearerLayer::retrying`] makes a layer
//! for `Clone` bodies (`String`, `Bytes`, `Full<Bytes>`) that also sends the request once more
//! after a 401: with the nonce the API asked for (`use_dpop_nonce`), or with a fresh token. The
//! copy it sends again has the request's method, URI, version, headers and body; extensions are
//! not copied (they are not `Clone`).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, Request, Response};
use tower::{Layer, Service};

use crate::authorization::{ApiCalls, Retry};
use crate::source::{Token, TokenSource};

/// Error type of [`BearerService`]: the token error or the inner service's error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps services in [`BearerService`].
///
/// ```no_run
/// # fn run<S>(tokens: m2m_client::source::TokenSource, inner: S) {
/// use m2m_client::integrations::tower::BearerLayer;
/// use tower::Layer;
///
/// let authed = BearerLayer::new(tokens).layer(inner); // e.g. a hyper or tonic client
/// # let _ = authed;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct BearerLayer<M = NoRetry> {
    calls: ApiCalls,
    mode: PhantomData<M>,
}

/// Mode of a [`BearerService`] that sends each request once (any body).
#[derive(Clone, Copy, Debug)]
pub struct NoRetry;

/// Mode of a [`BearerService`] that sends a request once more after a 401 (`Clone` bodies).
#[derive(Clone, Copy, Debug)]
pub struct RetryOnce;

impl BearerLayer {
    /// A layer adding tokens from `source`, sending each request once.
    pub fn new(source: TokenSource) -> Self {
        BearerLayer {
            calls: ApiCalls::new(source),
            mode: PhantomData,
        }
    }

    /// The same layer for `Clone` request bodies, sending a request once more after a 401 (with
    /// the DPoP nonce the API asked for, else with a fresh token).
    pub fn retrying(self) -> BearerLayer<RetryOnce> {
        BearerLayer {
            calls: self.calls,
            mode: PhantomData,
        }
    }
}

impl<S, M> Layer<S> for BearerLayer<M> {
    type Service = BearerService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            calls: self.calls.clone(),
            mode: PhantomData,
        }
    }
}

/// Adds the token's headers to each request before passing it to the inner service.
pub struct BearerService<S, M = NoRetry> {
    inner: S,
    calls: ApiCalls,
    mode: PhantomData<M>,
}

impl<S: Clone, M> Clone for BearerService<S, M> {
    fn clone(&self) -> Self {
        BearerService {
            inner: self.inner.clone(),
            calls: self.calls.clone(),
            mode: PhantomData,
        }
    }
}

impl<S, M> fmt::Debug for BearerService<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerService")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

impl<S, M> BearerService<S, M> {
    /// The ready inner service goes into the future; a fresh clone stays for the next
    /// poll_ready (the standard tower pattern for services that await before calling).
    fn take_inner(&mut self) -> S
    where
        S: Clone,
    {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

/// Puts the token's headers on `request` (a fresh proof for a DPoP-bound token).
fn authorize<B>(calls: &ApiCalls, request: &mut Request<B>, token: &Token) -> Result<(), BoxError> {
    let url = request.uri().to_string();
    let auth = calls.authorize(token, request.method().as_str(), &url)?;
    auth.apply_to(request.headers_mut())?;
    Ok(())
}

/// What the answer means (see [`ApiCalls::answered`]).
fn answered(calls: &ApiCalls, token: &Token, url: &str, status: u16, headers: &HeaderMap) -> Retry {
    calls.answered(
        token,
        url,
        status,
        headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        headers.get("dpop-nonce").and_then(|v| v.to_str().ok()),
    )
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BearerService<S, NoRetry>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ReqBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let mut inner = self.take_inner();
        let calls = self.calls.clone();
        Box::pin(async move {
            let token = calls.source().token().await?;
            let url = request.uri().to_string();
            authorize(&calls, &mut request, &token)?;
            let response = inner.call(request).await.map_err(Into::into)?;
            // No retry here; the answer still drops a refused token and keeps a nonce.
            answered(
                &calls,
                &token,
                &url,
                response.status().as_u16(),
                response.headers(),
            );
            Ok(response)
        })
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BearerService<S, RetryOnce>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ReqBody: Clone + Send + 'static,
    ResBody: Send,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let mut inner = self.take_inner();
        // A second clone for the retry: the first is used (and so not ready) by then.
        let mut again = inner.clone();
        let calls = self.calls.clone();
        Box::pin(async move {
            let token = calls.source().token().await?;
            let url = request.uri().to_string();
            let mut retry = copy(&request);
            authorize(&calls, &mut request, &token)?;
            let response = inner.call(request).await.map_err(Into::into)?;
            let decision = answered(
                &calls,
                &token,
                &url,
                response.status().as_u16(),
                response.headers(),
            );
            if decision == Retry::No {
                return Ok(response);
            }
            // The refused answer is not passed on.
            drop(response);
            let token = match decision {
                Retry::No | Retry::WithNonce => token,
                Retry::WithNewToken => calls.source().token().await?,
            };
            authorize(&calls, &mut retry, &token)?;
            std::future::poll_fn(|cx| again.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = again.call(retry).await.map_err(Into::into)?;
            calls.remember_nonce(
                &token,
                &url,
                response
                    .headers()
                    .get("dpop-nonce")
                    .and_then(|v| v.to_str().ok()),
            );
            Ok(response)
        })
    }
}

/// The request to send again: method, URI, version, headers and body (extensions are not
/// `Clone`).
fn copy<B: Clone>(request: &Request<B>) -> Request<B> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}
