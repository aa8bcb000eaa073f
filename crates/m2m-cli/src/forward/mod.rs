//! The forwarding engine: a reverse proxy to one upstream, shared by `m2m proxy` (which injects
//! a token) and `m2m gateway` (which verifies one): what differs is a [`Hook`] that rewrites
//! each outgoing request.
//!
//! # Layout
//!
//! - [`Forwarder`] (here): the request path — hop-by-hop headers out, the hook, the upstream
//!   call, bodies streamed both ways (an SSE response goes out event by event), one retry when
//!   the hook asks for it and the body was small enough to keep, 502 without upstream detail
//!   when the upstream does not answer.
//! - `upstream`: the upstream call — `http://` on `pool`'s kept-alive HTTP/1.1 connections,
//!   driven by the request's own task (no hand-over between tasks per request); `https://` on
//!   reqwest's pool (rustls, HTTP/2 by ALPN).
//! - `hop`: the RFC 9110 §7.6.1 hop-by-hop headers.
//! - `body`: the caller's body on its way upstream, kept or streamed (never collected).
//! - `metrics`: the counters and their Prometheus text; `admin`: the `/healthz` and `/metrics`
//!   listener.
//! - `listen`: `--listen` addresses (loopback, `unix:PATH` with mode 0600) and serving a hyper
//!   service (an `m2m_server::ConnService`: [`ForwardService`], or the gateway's check in front of
//!   [`Forwarder::forward`]) on them with `m2m serve`'s accept loop and time limits until
//!   shutdown. No router on the request path: every request is forwarded, so one would only
//!   add its own work per request (docs/benchmarks.md).

mod admin;
mod body;
mod hop;
mod listen;
mod metrics;
mod pool;
mod upstream;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use url::Url;

pub(crate) use admin::admin_router;
pub(crate) use hop::strip_hop_by_hop;
pub(crate) use listen::{ListenAddr, serve_until_signal};
pub(crate) use metrics::Metrics;

use body::SendBody;
use upstream::Transport;

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

    /// Whether `retry` can ever say yes. A hook that never retries sets it to `false`, and the
    /// forwarder then hands the caller's headers over instead of keeping a copy for a second
    /// attempt.
    const MAY_RETRY: bool = true;

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
    /// answer to the first attempt. Asked after every first attempt when [`Hook::MAY_RETRY`]
    /// (the hook may drop state, such as a refused token, either way); the request is sent again
    /// only when its body could be kept.
    fn retry(&self, _ticket: &Self::Ticket, _status: StatusCode, _headers: &HeaderMap) -> bool {
        false
    }
}

/// A reverse proxy to one upstream base URL.
#[derive(Debug)]
pub(crate) struct Forwarder<H> {
    transport: Transport,
    upstream: Url,
    /// The upstream's path without its trailing `/`: the prefix of every forwarded path.
    base_path: String,
    hook: H,
    metrics: Arc<Metrics>,
}

impl<H: Hook> Forwarder<H> {
    /// A forwarder to `upstream` (its path is the prefix of every forwarded path).
    pub(crate) fn new(upstream: Url, hook: H, metrics: Arc<Metrics>) -> Result<Self, String> {
        let transport = Transport::new(&upstream, CONNECT_TIMEOUT, POOL_IDLE_TIMEOUT)?;
        let base_path = upstream.path().trim_end_matches('/').to_owned();
        Ok(Forwarder {
            transport,
            upstream,
            base_path,
            hook,
            metrics,
        })
    }

    /// The forwarder served as it is, every request forwarded: what `m2m proxy` runs, where a
    /// router in front would only add its own work per request.
    pub(crate) fn service(self) -> ForwardService<H> {
        ForwardService(Arc::new(self))
    }

    /// The upstream URL for a request's target: the upstream's path, then the request's path and
    /// query. Built on the already parsed upstream URL (only the path and query are parsed per
    /// request), with the same result as parsing the joined string.
    fn target(&self, uri: &Uri) -> Option<Url> {
        // Authority-form (`CONNECT host:port`) has no path: the upstream's root.
        let path = uri.path_and_query().map_or("/", |_| uri.path());
        if !path.starts_with('/') {
            return None;
        }
        let mut url = self.upstream.clone();
        if self.base_path.is_empty() {
            url.set_path(path);
        } else {
            let mut joined = String::with_capacity(self.base_path.len() + path.len());
            joined.push_str(&self.base_path);
            joined.push_str(path);
            url.set_path(&joined);
        }
        url.set_query(uri.query());
        Some(url)
    }
}

/// The body of one forwarded request: kept (and so sendable twice) or streamed once.
enum OutBody {
    Kept(Bytes),
    Streamed(Option<Body>),
}

impl OutBody {
    /// Keeps bodies that are absent or declare at most [`RETRY_BODY_LIMIT`] bytes.
    async fn from_request<B: IncomingBody>(
        headers: &HeaderMap,
        body: B,
    ) -> Result<OutBody, Response> {
        let chunked = headers.contains_key(header::TRANSFER_ENCODING);
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        match (chunked, length) {
            (false, None) => Ok(OutBody::Kept(Bytes::new())),
            (false, Some(n)) if n <= RETRY_BODY_LIMIT => {
                match body::collect_small(body, RETRY_BODY_LIMIT).await {
                    Some(bytes) => Ok(OutBody::Kept(bytes)),
                    None => Err(plain(StatusCode::BAD_REQUEST, "bad request body\n")),
                }
            }
            _ => Ok(OutBody::Streamed(Some(Body::new(body)))),
        }
    }

    fn take(&mut self) -> SendBody {
        match self {
            OutBody::Kept(bytes) => SendBody::Kept(Some(bytes.clone())),
            OutBody::Streamed(body) => SendBody::Streamed(body.take().unwrap_or_default()),
        }
    }

    fn is_kept(&self) -> bool {
        matches!(self, OutBody::Kept(_))
    }
}

/// A [`Forwarder`] as a hyper service (see [`Forwarder::service`]).
#[derive(Debug)]
pub(crate) struct ForwardService<H>(Arc<Forwarder<H>>);

impl<H> Clone for ForwardService<H> {
    fn clone(&self) -> Self {
        ForwardService(Arc::clone(&self.0))
    }
}

impl<H: Hook> hyper::service::Service<axum::http::Request<hyper::body::Incoming>>
    for ForwardService<H>
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        let fwd = Arc::clone(&self.0);
        Box::pin(async move { Ok(fwd.forward(request).await) })
    }
}

/// A request body as the forwarder takes it: hyper's own, or any other that yields [`Bytes`].
/// Generic rather than boxed into [`Body`] at once, so that a small body is read into memory
/// without an allocation of its own first.
pub(crate) trait IncomingBody:
    http_body::Body<Data = Bytes, Error: Into<axum::BoxError>> + Send + Unpin + 'static
{
}

impl<B> IncomingBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<axum::BoxError>> + Send + Unpin + 'static
{
}

/// A copy of `headers` for one attempt, with room for the headers the hook and the transport
/// add (`Authorization`, `DPoP`, `Host`, `User-Agent`, `Accept`), so that adding them does not
/// grow the map again.
fn copy_with_room(headers: &HeaderMap) -> HeaderMap {
    let mut copy = HeaderMap::with_capacity(headers.len() + 5);
    for (name, value) in headers {
        copy.append(name.clone(), value.clone());
    }
    copy
}

impl<H: Hook> Forwarder<H> {
    /// Forwards one request (any method, any path) and answers the upstream's response, or the
    /// forwarder's own short error.
    pub(crate) async fn forward<B: IncomingBody>(
        &self,
        request: axum::http::Request<B>,
    ) -> Response {
        self.metrics.request();
        let (parts, body) = request.into_parts();
        let Some(url) = self.target(&parts.uri) else {
            return plain(StatusCode::BAD_REQUEST, "bad request target\n");
        };
        let mut headers = parts.headers;
        let mut out = match OutBody::from_request(&headers, body).await {
            Ok(out) => out,
            Err(response) => return response,
        };
        strip_hop_by_hop(&mut headers);
        // The transport writes the upstream's own Host from the URL.
        headers.remove(header::HOST);
        let kept = out.is_kept();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Only a kept body can be sent again, so only then are the headers needed twice.
            let mut outgoing = if kept && H::MAY_RETRY {
                copy_with_room(&headers)
            } else {
                std::mem::take(&mut headers)
            };
            let ticket = match self
                .hook
                .prepare(&parts.method, &url, &parts.extensions, &mut outgoing)
                .await
            {
                Ok(ticket) => ticket,
                Err(response) => return response,
            };
            let answer = match self
                .transport
                .send(
                    parts.method.clone(),
                    &url,
                    &parts.uri,
                    outgoing,
                    out.take(),
                    kept,
                )
                .await
            {
                Ok(answer) => answer,
                Err(e) => {
                    self.metrics.upstream_error();
                    tracing::warn!(error = %e, "upstream did not answer");
                    return plain(StatusCode::BAD_GATEWAY, "bad gateway\n");
                }
            };
            let status = answer.status();
            self.metrics.upstream_status(status.as_u16());
            if attempt == 1
                && H::MAY_RETRY
                && self.hook.retry(&ticket, status, answer.headers())
                && kept
            {
                self.metrics.retry();
                continue;
            }
            return answer.into_response();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    struct NoHook;

    impl Hook for NoHook {
        type Ticket = ();

        async fn prepare(
            &self,
            _method: &Method,
            _url: &Url,
            _extensions: &Extensions,
            _headers: &mut HeaderMap,
        ) -> Result<(), Response> {
            Ok(())
        }
    }

    /// The per-request join gives what parsing the joined string gave (the way it was built
    /// before): dot segments resolved, encodings kept, the query as sent.
    #[test]
    fn the_target_is_the_upstream_path_then_the_request_target() {
        for base in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://[::1]:9/api/v1",
            "https://api.example/base/",
        ] {
            let upstream = Url::parse(base).unwrap_or_else(|e| panic!("{e}"));
            let fwd = Forwarder::new(upstream.clone(), NoHook, Arc::new(Metrics::default()))
                .unwrap_or_else(|e| panic!("{e}"));
            for target in [
                "/",
                "/x",
                "/x/",
                "/a/b?c=d&e=%20f",
                "/a/../b",
                "/a/%2e%2e/b",
                "/%7Euser/%E2%82%AC",
                "/q?",
                "/a/./b/%20",
                "/x?a=b?c",
            ] {
                let uri: Uri = target.parse().unwrap_or_else(|e| panic!("{target}: {e}"));
                let pq = uri.path_and_query().map_or("/", |p| p.as_str());
                let joined = format!("{}{pq}", upstream.as_str().trim_end_matches('/'));
                let old = Url::parse(&joined).ok();
                assert_eq!(fwd.target(&uri), old, "{base} + {target}");
            }
        }
    }
}
