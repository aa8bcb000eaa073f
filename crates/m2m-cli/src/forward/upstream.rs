//! How a forwarded request reaches the upstream: a cleartext `http://` upstream through `pool`
//! (HTTP/1.1 connections driven by the request's own task, the fast path); an `https://` one —
//! or any upstream while an HTTP proxy is configured in the environment — through reqwest's
//! pooled client (rustls with certificate verification, HTTP/2 by ALPN, the proxy honoured).
//! Both send the same headers: the caller's end-to-end ones as the hook left them, `Host` from
//! the upstream URL, and `User-Agent`/`Accept` defaults when the caller sent none.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, Version, header};
use axum::response::Response;
use url::{Position, Url};

use super::body::SendBody;
use super::hop::strip_hop_by_hop;
use super::pool::{Pool, UpstreamBody};

/// Sent when the caller names no client of its own.
const USER_AGENT: &str = concat!("m2m-proxy/", env!("CARGO_PKG_VERSION"));

/// The environment variables through which reqwest sends plain-http requests via a proxy.
const PROXY_VARS: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// The client for one upstream.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Cleartext HTTP/1.1 on the forwarder's own connections.
    Direct {
        pool: Arc<Pool>,
        /// The `Host` header for every request (the upstream's authority, computed once).
        host: HeaderValue,
    },
    /// TLS (and HTTP/2 where the upstream offers it) or an environment proxy: reqwest.
    Reqwest(reqwest::Client),
}

/// An upstream answer, whichever client got it.
pub(crate) enum Answer {
    Direct(axum::http::Response<UpstreamBody>),
    Reqwest(reqwest::Response),
}

impl Answer {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Answer::Direct(r) => r.status(),
            Answer::Reqwest(r) => r.status(),
        }
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        match self {
            Answer::Direct(r) => r.headers(),
            Answer::Reqwest(r) => r.headers(),
        }
    }

    /// The answer for the caller: its status, its end-to-end headers, its body streamed.
    pub(crate) fn into_response(self) -> Response {
        let (mut parts, body) = match self {
            Answer::Direct(r) => {
                let (parts, body) = r.into_parts();
                (parts, Body::new(body))
            }
            Answer::Reqwest(r) => {
                let r: axum::http::Response<reqwest::Body> = r.into();
                let (parts, body) = r.into_parts();
                (parts, Body::new(body))
            }
        };
        strip_hop_by_hop(&mut parts.headers);
        parts.version = Version::HTTP_11;
        Response::from_parts(parts, body)
    }
}

impl Transport {
    /// The client for `upstream` (an `http` or `https` base URL).
    pub(crate) fn new(
        upstream: &Url,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<Self, String> {
        let proxied = PROXY_VARS
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
        if upstream.scheme() == "http" && !proxied {
            let host = match upstream.host() {
                Some(url::Host::Domain(d)) => d.to_owned(),
                Some(url::Host::Ipv4(a)) => a.to_string(),
                Some(url::Host::Ipv6(a)) => a.to_string(),
                None => return Err("the upstream URL has no host".to_owned()),
            };
            let port = upstream.port_or_known_default().unwrap_or(80);
            // The authority as written in the URL (IPv6 in brackets), without a default port.
            let authority = match upstream.port() {
                Some(p) => format!("{}:{p}", upstream.host_str().unwrap_or_default()),
                None => upstream.host_str().unwrap_or_default().to_owned(),
            };
            let host_header = HeaderValue::from_str(&authority)
                .map_err(|_| "the upstream host is not a valid Host header".to_owned())?;
            return Ok(Transport::Direct {
                pool: Arc::new(Pool::new(host, port, connect_timeout, idle_timeout)),
                host: host_header,
            });
        }
        let client = reqwest::Client::builder()
            // 3xx answers belong to the caller; following them would send the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(idle_timeout)
            .tcp_nodelay(true)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Transport::Reqwest(client))
    }

    /// Sends one request to `url` (the upstream base joined with the caller's target, which
    /// came as `incoming`).
    /// `reusable`: the body is sent whole from memory (see [`Pool::send`]). The error is for the
    /// log only.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &Url,
        incoming: &Uri,
        mut headers: HeaderMap,
        body: SendBody,
        reusable: bool,
    ) -> Result<Answer, String> {
        match self {
            Transport::Direct { pool, host } => {
                // The request line's target: the caller's own (shared, not parsed again) when
                // the join left it as it was, the usual case with an upstream at `/`.
                let wanted = &url[Position::BeforePath..Position::AfterQuery];
                let target = match incoming.path_and_query() {
                    Some(pq) if pq.as_str() == wanted => Uri::from(pq.clone()),
                    _ => Uri::try_from(wanted).map_err(|e| format!("bad request target: {e}"))?,
                };
                headers.insert(header::HOST, host.clone());
                if !headers.contains_key(header::USER_AGENT) {
                    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
                }
                if !headers.contains_key(header::ACCEPT) {
                    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
                }
                let mut request = Request::new(body);
                *request.method_mut() = method;
                *request.uri_mut() = target;
                *request.headers_mut() = headers;
                pool.send(request, reusable)
                    .await
                    .map(Answer::Direct)
                    .map_err(|e| e.to_string())
            }
            Transport::Reqwest(client) => client
                .request(method, url.clone())
                .headers(headers)
                .body(body.into_reqwest())
                .send()
                .await
                .map(Answer::Reqwest)
                .map_err(|e| m2m_client::error_chain(&e)),
        }
    }
}
