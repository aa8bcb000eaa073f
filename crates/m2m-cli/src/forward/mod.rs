//! The forwarding engine: a reverse proxy to one upstream, shared by `m2m proxy` (which injects
//! a token) and `m2m gateway` (which verifies one): what differs is a [`Hook`] that rewrites
//! each outgoing request.
//!
//! # Layout
//!
//! - [`Forwarder`] (here): the request path — hop-by-hop headers out, the hook, the upstream
//!   call over one kept-alive reqwest pool (HTTP/1.1, HTTP/2 by ALPN), bodies streamed both ways
//!   (an SSE response goes out event by event), one retry when the hook asks for it and the body
//!   was small enough to keep, 502 without upstream detail when the upstream does not answer.
//! - `hop`: the RFC 9110 §7.6.1 hop-by-hop headers.
//! - `body`: the caller's body handed to reqwest without collecting it.
//! - `metrics`: the counters and their Prometheus text; `admin`: the `/healthz` and `/metrics`
//!   listener.
//! - `listen`: `--listen` addresses (loopback, `unix:PATH` with mode 0600) and serving a router
//!   on them with `m2m serve`'s accept loop and time limits until shutdown.

mod admin;
mod body;
mod hop;
mod listen;
mod metrics;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

pub(crate) use admin::admin_router;
pub(crate) use hop::strip_hop_by_hop;
pub(crate) use listen::{ListenAddr, serve_until_signal};
pub(crate) use metrics::Metrics;

/// Bodies up to this size are kept in memory so the request can be sent a second time (a 401
/// `invalid_token` retry); larger or unsized (chunked) bodies are streamed and never retried.
pub(crate) const RETRY_BODY_LIMIT: usize = 64 * 1024;

/// An upstream that accepts no connection in this time is down: answer 502 rather than hold
/// the caller.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle upstream connections are kept this long for the next request (keep-alive).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What a command adds to the forwarder: a rewrite of each outgoing request and the decision to
/// send it once more after the upstream's answer.
pub(crate) trait Hook: Send + Sync + 'static {
    /// What `prepare` remembers for `retry` (the proxy: the token it injected).
    type Ticket: Send;

    /// Rewrites the headers of the request about to go to `url` (hop-by-hop headers are already
    /// gone, so nothing the caller names in `Connection` can remove what the hook adds). The
    /// request's extensions carry what layers in front of the forwarder found (the gateway: the
    /// verified caller). An `Err` is answered to the caller as is, and nothing is sent upstream.
    fn prepare(
        &self,
        method: &Method,
        url: &Url,
        extensions: &Extensions,
        headers: &mut HeaderMap,
    ) -> impl Future<Output = Result<Self::Ticket, Response>> + Send;

    /// Whether to send the request once more (after `prepare` again), seeing the upstream's
    /// answer to the first attempt. Asked after every first attempt (the hook may drop state,
    /// such as a refused token, either way); the request is sent again only when its body could
    /// be kept.
    fn retry(&self, _ticket: &Self::Ticket, _status: StatusCode, _headers: &HeaderMap) -> bool {
        false
    }
}

/// A reverse proxy to one upstream base URL.
#[derive(Debug)]
pub(crate) struct Forwarder<H> {
    client: reqwest::Client,
    upstream: Url,
    hook: H,
    metrics: Arc<Metrics>,
}

impl<H: Hook> Forwarder<H> {
    /// A forwarder to `upstream` (its path is the prefix of every forwarded path).
    pub(crate) fn new(upstream: Url, hook: H, metrics: Arc<Metrics>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            // 3xx answers belong to the caller; following them would send the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .user_agent(concat!("m2m-proxy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Forwarder {
            client,
            upstream,
            hook,
            metrics,
        })
    }

    /// The router that forwards every request (any method, any path).
    pub(crate) fn router(self) -> Router {
        Router::new()
            .fallback(forward::<H>)
            .with_state(Arc::new(self))
    }

    /// The upstream URL for a request path + query: the upstream's path, then the request's.
    fn target(&self, path_and_query: &str) -> Option<Url> {
        let base = self.upstream.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path_and_query}")).ok()
    }
}

/// The body of one forwarded request: kept (and so sendable twice) or streamed once.
enum OutBody {
    Kept(Bytes),
    Streamed(Option<Body>),
}

impl OutBody {
    /// Keeps bodies that are absent or declare at most [`RETRY_BODY_LIMIT`] bytes.
    async fn from_request(headers: &HeaderMap, body: Body) -> Result<OutBody, Response> {
        let chunked = headers.contains_key(header::TRANSFER_ENCODING);
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        match (chunked, length) {
            (false, None) => Ok(OutBody::Kept(Bytes::new())),
            (false, Some(n)) if n <= RETRY_BODY_LIMIT => {
                match axum::body::to_bytes(body, RETRY_BODY_LIMIT).await {
                    Ok(bytes) => Ok(OutBody::Kept(bytes)),
                    Err(_) => Err(plain(StatusCode::BAD_REQUEST, "bad request body\n")),
                }
            }
            _ => Ok(OutBody::Streamed(Some(body))),
        }
    }

    fn take(&mut self) -> Option<reqwest::Body> {
        match self {
            OutBody::Kept(bytes) => Some(reqwest::Body::from(bytes.clone())),
            OutBody::Streamed(body) => body
                .take()
                .map(|b| reqwest::Body::wrap(body::SyncBody::new(b))),
        }
    }

    fn is_kept(&self) -> bool {
        matches!(self, OutBody::Kept(_))
    }
}

/// The fallback handler: one request forwarded.
async fn forward<H: Hook>(State(fwd): State<Arc<Forwarder<H>>>, request: Request) -> Response {
    fwd.metrics.request();
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let Some(url) = fwd.target(&path) else {
        return plain(StatusCode::BAD_REQUEST, "bad request target\n");
    };
    let mut headers = parts.headers;
    let mut out = match OutBody::from_request(&headers, body).await {
        Ok(out) => out,
        Err(response) => return response,
    };
    strip_hop_by_hop(&mut headers);
    // reqwest writes the upstream's own Host from the URL.
    headers.remove(header::HOST);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut outgoing = headers.clone();
        let ticket = match fwd
            .hook
            .prepare(&parts.method, &url, &parts.extensions, &mut outgoing)
            .await
        {
            Ok(ticket) => ticket,
            Err(response) => return response,
        };
        let mut builder = fwd
            .client
            .request(parts.method.clone(), url.clone())
            .headers(outgoing);
        if let Some(body) = out.take() {
            builder = builder.body(body);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(e) => {
                fwd.metrics.upstream_error();
                tracing::warn!(error = %m2m_client::error_chain(&e), "upstream did not answer");
                return plain(StatusCode::BAD_GATEWAY, "bad gateway\n");
            }
        };
        let status = response.status();
        fwd.metrics.upstream_status(status.as_u16());
        if attempt == 1 && fwd.hook.retry(&ticket, status, response.headers()) && out.is_kept() {
            fwd.metrics.retry();
            continue;
        }
        return pass_back(response);
    }
}

/// The upstream's answer for the caller: its status, its end-to-end headers, its body streamed.
fn pass_back(response: reqwest::Response) -> Response {
    let response: axum::http::Response<reqwest::Body> = response.into();
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.version = axum::http::Version::HTTP_11;
    Response::from_parts(parts, Body::new(body))
}

/// A short plain-text answer of the proxy's own (never the upstream's words).
pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
