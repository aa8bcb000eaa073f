//! [`BearerLayer`] / [`BearerService`]: a tower middleware that puts a [`TokenSource`] token on
//! every `http::Request`, for hyper, tonic and axum clients.
//!
//! No retry on 401 here: a generic `http::Request` body cannot be replayed in general. The
//! service drops the cached token when the inner service answers 401, so the next request
//! carries a fresh one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, HeaderValue};
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::source::TokenSource;

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
pub struct BearerLayer {
    source: TokenSource,
}

impl BearerLayer {
    /// A layer adding tokens from `source`.
    pub fn new(source: TokenSource) -> Self {
        BearerLayer { source }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            source: self.source.clone(),
        }
    }
}

/// Adds `Authorization: Bearer …` to each request before passing it to the inner service.
#[derive(Clone)]
pub struct BearerService<S> {
    inner: S,
    source: TokenSource,
}

impl<S> fmt::Debug for BearerService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerService")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The token holds characters an HTTP header cannot carry.
#[derive(Debug, thiserror::Error)]
#[error("the access token contains characters that are not allowed in an HTTP header")]
struct InvalidTokenChars;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BearerService<S>
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
        // The ready inner service goes into the future; a fresh clone stays for the next
        // poll_ready (the standard tower pattern for services that await before calling).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let source = self.source.clone();
        Box::pin(async move {
            let token = source.token().await?;
            let mut value =
                HeaderValue::from_str(&token.bearer()).map_err(|_| InvalidTokenChars)?;
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
            let response = inner.call(request).await.map_err(Into::into)?;
            if response.status() == StatusCode::UNAUTHORIZED {
                source.invalidate_token(&token);
            }
            Ok(response)
        })
    }
}
