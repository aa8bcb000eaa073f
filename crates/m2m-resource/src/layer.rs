//! The tower [`RequireBearerLayer`]: verifies the request's Bearer token before the inner service
//! sees it, puts the [`Caller`] in the request's extensions, and answers refusals itself with an
//! RFC 6750 challenge.
//!
//! It wraps any `Service<http::Request<B>>` whose response body is an `http_body::Body` (an axum
//! router, a handler, a reverse proxy's forwarding service), so a gateway can put it in front of
//! anything and read the identity from `request.extensions().get::<Caller>()`.
//!
//! Per-route scopes: layer the whole API with the scope-less layer and add
//! `RequireBearerLayer::…require_scopes([...])` as a `route_layer` where a route needs more; a
//! request already carrying a [`Caller`] is not verified again, only its scopes are checked.
//!
//! Token extraction (RFC 6750 §2.1 only): exactly one `Authorization` header with scheme
//! `Bearer`; `access_token` in the query string is refused (it ends up in logs); the `DPoP`
//! scheme is refused until DPoP verification exists, and a token with `cnf` is never accepted as
//! Bearer (the core rule).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::BoxError;
use axum::body::{Body, HttpBody};
use axum::http::{Request, Response, header};
use bytes::Bytes;
use tower::{Layer, Service};

use crate::challenge::Challenge;
use crate::error::Refusal;
use crate::identity::Caller;
use crate::verifier::Verifier;

/// Verifies Bearer tokens for the wrapped service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RequireBearerLayer {
    verifier: Verifier,
    scopes: Arc<[String]>,
    challenge: Arc<Challenge>,
}

impl RequireBearerLayer {
    /// Requests must carry a token `verifier` accepts.
    pub fn new(verifier: Verifier) -> Self {
        RequireBearerLayer {
            verifier,
            scopes: Arc::from(Vec::new()),
            challenge: Arc::new(Challenge::new()),
        }
    }
    /// ... with all of these scopes (403 `insufficient_scope` otherwise).
    pub fn require_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
    /// The challenge parameters (`realm`, `resource_metadata`) of refusals; see
    /// [`ResourceMetadata::challenge`](crate::ResourceMetadata::challenge).
    pub fn challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = Arc::new(challenge);
        self
    }

    /// The verified caller of `request`, or the refusal (the layer's decision, for callers that
    /// build their own service around it).
    pub async fn authorize<B>(&self, request: &Request<B>) -> Result<Caller, Refusal> {
        self.authorize_step(self.first_step(request)).await
    }

    /// What can be decided without waiting: an already-verified caller, the token to verify (owned,
    /// so the request body type need not be `Sync` across the await), or a refusal.
    fn first_step<B>(&self, request: &Request<B>) -> Result<Step, Refusal> {
        if let Some(caller) = request.extensions().get::<Caller>() {
            return Ok(Step::Known(caller.clone()));
        }
        Ok(Step::Verify(bearer_token(request)?.to_owned()))
    }

    async fn authorize_step(&self, step: Result<Step, Refusal>) -> Result<Caller, Refusal> {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        match step? {
            Step::Known(caller) => {
                caller.access_token_claims().require_scopes(&scopes)?;
                Ok(caller)
            }
            Step::Verify(token) => self.verifier.verify(&token, &scopes).await,
        }
    }
}

/// See [`RequireBearerLayer::first_step`].
enum Step {
    Known(Caller),
    Verify(String),
}

impl<S> Layer<S> for RequireBearerLayer {
    type Service = RequireBearer<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequireBearer {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RequireBearerLayer`] makes.
#[derive(Clone, Debug)]
pub struct RequireBearer<S> {
    inner: S,
    layer: RequireBearerLayer,
}

impl<S, B, RB> Service<Request<B>> for RequireBearer<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: HttpBody<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone-and-swap of tower's docs: the ready service goes into the future, a fresh
        // clone stays for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let step = layer.first_step(&request);
        Box::pin(async move {
            match layer.authorize_step(step).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    let response = inner.call(request).await?;
                    Ok(response.map(Body::new))
                }
                Err(refusal) => {
                    tracing::info!(
                        status = refusal.status(),
                        reason = refusal.reason().map(|r| r.as_str()),
                        "request refused"
                    );
                    let scopes: Vec<&str> = layer.scopes.iter().map(String::as_str).collect();
                    Ok(layer.challenge.response(&refusal, &scopes))
                }
            }
        })
    }
}

/// The Bearer token of `request` (RFC 6750 §2.1), or why there is none.
pub fn bearer_token<B>(request: &Request<B>) -> Result<&str, Refusal> {
    if request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "access_token" || p.starts_with("access_token="))
    }) {
        return Err(Refusal::InvalidRequest(
            "access tokens in the query string are refused; send Authorization: Bearer".into(),
        ));
    }
    let mut values = request.headers().get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Refusal::NoToken);
    };
    if values.next().is_some() {
        return Err(Refusal::InvalidRequest(
            "more than one Authorization header".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| Refusal::InvalidRequest("the Authorization header is not ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("DPoP") {
        return Err(Refusal::token(
            m2m_core::validate::AccessTokenReason::SenderConstrained,
            "DPoP-bound tokens are not accepted by this resource yet",
        ));
    }
    if !scheme.eq_ignore_ascii_case("Bearer") {
        // Another scheme (Basic, …) is no Bearer token: the client gets the Bearer challenge.
        return Err(Refusal::NoToken);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || !token.bytes().all(is_token68) {
        return Err(Refusal::InvalidRequest(
            "the Bearer credential is not a token68 value".into(),
        ));
    }
    Ok(token)
}

/// RFC 7235 token68 characters (plus `=` padding).
fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}
