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
//! Token extraction: exactly one `Authorization` header; `access_token` in the query string is
//! refused (it ends up in logs). Without DPoP settings (or in mode `bearer`) only the `Bearer`
//! scheme is accepted and the `DPoP` scheme refused; with [`RequireBearerLayer::dpop`] in mode
//! `allowed` or `required` a `DPoP` token and its proof are checked as [`crate::dpop`] says. A
//! token with `cnf` is never accepted as Bearer (the core rule).

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
use crate::dpop::{DpopMode, DpopSettings, Presented, Scheme, read_credentials, used_scheme};
use crate::error::Refusal;
use crate::identity::Caller;
use crate::verifier::Verifier;

/// Verifies Bearer tokens for the wrapped service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RequireBearerLayer {
    verifier: Verifier,
    scopes: Arc<[String]>,
    challenge: Arc<Challenge>,
    dpop: Option<Arc<DpopSettings>>,
}

impl RequireBearerLayer {
    /// Requests must carry a token `verifier` accepts.
    pub fn new(verifier: Verifier) -> Self {
        RequireBearerLayer {
            verifier,
            scopes: Arc::from(Vec::new()),
            challenge: Arc::new(Challenge::new()),
            dpop: None,
        }
    }
    /// Accept DPoP-bound tokens as `settings` say (mode, external URL, replay store); the
    /// challenges follow the mode.
    pub fn dpop(mut self, settings: DpopSettings) -> Self {
        self.challenge = Arc::new(
            (*self.challenge)
                .clone()
                .dpop(settings.mode(), settings.algorithms()),
        );
        self.dpop = Some(Arc::new(settings));
        self
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
        self.challenge = Arc::new(match &self.dpop {
            Some(d) => challenge.dpop(d.mode(), d.algorithms()),
            None => challenge,
        });
        self
    }

    /// The response refusing `request` for `refusal`: the challenges of this layer's mode, the
    /// error on the scheme the request used.
    pub fn refusal_response<B>(&self, request: &Request<B>, refusal: &Refusal) -> Response<Body> {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        self.challenge
            .response_to(refusal, &scopes, request_scheme(request))
    }

    /// The verified caller of `request`, or the refusal (the layer's decision, for callers that
    /// build their own service around it).
    ///
    /// What the check needs is read from `request` before this returns, and the future does not
    /// borrow it: a caller can hold the request (whose body is rarely `Sync`) across the await
    /// and still have a `Send` future, without copying its parts aside first.
    pub fn authorize<'s, B>(
        &'s self,
        request: &Request<B>,
    ) -> impl Future<Output = Result<Caller, Refusal>> + Send + use<'s, B> {
        self.authorize_step(self.first_step(request))
    }

    /// What can be decided without waiting: an already-verified caller, the token to verify (owned,
    /// so the request body type need not be `Sync` across the await), or a refusal.
    fn first_step<B>(&self, request: &Request<B>) -> Result<Step, Refusal> {
        if let Some(caller) = request.extensions().get::<Caller>() {
            return Ok(Step::Known(caller.clone()));
        }
        let Some(dpop) = self
            .dpop
            .as_deref()
            .filter(|d| d.mode() != DpopMode::Bearer)
        else {
            return Ok(Step::Verify(bearer_token(request)?.to_owned()));
        };
        let headers = request.headers();
        let authorization: Vec<&[u8]> = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        let proofs: Vec<&[u8]> = headers
            .get_all("dpop")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        match read_credentials(dpop.mode(), request.uri().query(), &authorization, &proofs)? {
            Presented::Bearer(token) => Ok(Step::Verify(token.to_owned())),
            Presented::Dpop { token, proof } => {
                let hosts: Vec<&[u8]> = headers
                    .get_all(header::HOST)
                    .iter()
                    .map(|v| v.as_bytes())
                    .collect();
                let url = dpop.addressed().request_url(request.uri(), &hosts)?;
                Ok(Step::Dpop {
                    token: token.to_owned(),
                    proof: proof.to_owned(),
                    method: request.method().as_str().to_owned(),
                    url,
                })
            }
        }
    }

    async fn authorize_step(&self, step: Result<Step, Refusal>) -> Result<Caller, Refusal> {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        match step? {
            Step::Known(caller) => {
                caller.access_token_claims().require_scopes(&scopes)?;
                Ok(caller)
            }
            Step::Verify(token) => self.verifier.verify(&token, &scopes).await,
            Step::Dpop {
                token,
                proof,
                method,
                url,
            } => {
                let Some(dpop) = &self.dpop else {
                    return Err(Refusal::NoToken);
                };
                dpop.verify_request(&self.verifier, &token, &proof, &method, &url, &scopes)
                    .await
            }
        }
    }
}

/// See [`RequireBearerLayer::first_step`].
enum Step {
    Known(Caller),
    Verify(String),
    /// A DPoP request: everything owned, so the request need not be `Sync` across the await.
    Dpop {
        token: String,
        proof: String,
        method: String,
        url: String,
    },
}

/// The scheme `request` used (for where a challenge's `error` goes).
fn request_scheme<B>(request: &Request<B>) -> Option<Scheme> {
    let values: Vec<&[u8]> = request
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    used_scheme(&values)
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
        let used = request_scheme(&request);
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
                        reason = refusal.reason_name(),
                        "request refused"
                    );
                    let scopes: Vec<&str> = layer.scopes.iter().map(String::as_str).collect();
                    Ok(layer.challenge.response_to(&refusal, &scopes, used))
                }
            }
        })
    }
}

/// The Bearer token of `request` (RFC 6750 §2.1), or why there is none (the `DPoP` scheme is
/// refused: this is DPoP mode `bearer`).
pub fn bearer_token<B>(request: &Request<B>) -> Result<&str, Refusal> {
    let authorization: Vec<&[u8]> = request
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    match read_credentials(DpopMode::Bearer, request.uri().query(), &authorization, &[])? {
        Presented::Bearer(token) => Ok(token),
        // Mode bearer never yields a DPoP credential.
        Presented::Dpop { .. } => Err(Refusal::NoToken),
    }
}
