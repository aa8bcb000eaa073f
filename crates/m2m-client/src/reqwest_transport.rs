//! The default [`TokenTransport`]: reqwest over rustls (aws-lc-rs), redirects off, connect and
//! total timeouts, bounded response size, and error messages that say why a request failed.

use std::error::Error as StdError;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use url::Url;

use crate::error::{ConfigError, TransportKind};
use crate::transport::{
    BoxFuture, FORM_CONTENT_TYPE, FormPost, TokenTransport, TransportError, TransportResponse,
};

/// Largest response body read; token responses are a few hundred bytes, and an endless body must
/// not exhaust memory.
const MAX_BODY: usize = 256 * 1024;

/// Timeouts and identification of the default transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Limit for establishing the connection (TCP + TLS); `None` waits forever.
    pub connect_timeout: Option<Duration>,
    /// Limit for the whole exchange; `None` waits forever.
    pub timeout: Option<Duration>,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connect_timeout: Some(Duration::from_secs(10)),
            timeout: Some(Duration::from_secs(30)),
            user_agent: concat!("m2m-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// [`TokenTransport`] over a `reqwest::Client` that never follows redirects.
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// Builds the transport.
    pub fn new(config: &TransportConfig) -> Result<Self, ConfigError> {
        let mut builder = reqwest::Client::builder()
            // Redirects would resend the assertion to wherever the response points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent.clone());
        if let Some(t) = config.connect_timeout {
            builder = builder.connect_timeout(t);
        }
        if let Some(t) = config.timeout {
            builder = builder.timeout(t);
        }
        let client = builder.build().map_err(|e| {
            ConfigError::Invalid(format!("cannot build the HTTP client: {}", error_chain(&e)))
        })?;
        Ok(ReqwestTransport { client })
    }

    /// Wraps an existing client. It must have redirects disabled (`redirect::Policy::none()`).
    pub fn from_client(client: reqwest::Client) -> Self {
        ReqwestTransport { client }
    }

    async fn send(
        &self,
        url: &Url,
        request: reqwest::RequestBuilder,
    ) -> Result<TransportResponse, TransportError> {
        let mut response = request.send().await.map_err(|e| classify(url, &e))?;
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE);
        let retry_after = header(RETRY_AFTER);
        let location = header(LOCATION);
        let dpop_nonce = header(HeaderName::from_static("dpop-nonce"));
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(url, &e))? {
            let room = MAX_BODY - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_BODY {
                break;
            }
        }
        Ok(TransportResponse {
            status,
            content_type,
            retry_after,
            location,
            dpop_nonce,
            body,
        })
    }
}

impl TokenTransport for ReqwestTransport {
    fn post_form<'a>(
        &'a self,
        request: &'a FormPost,
    ) -> BoxFuture<'a, Result<TransportResponse, TransportError>> {
        Box::pin(async move {
            let mut builder = self
                .client
                .post(request.url.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static(FORM_CONTENT_TYPE))
                .header(ACCEPT, HeaderValue::from_static("application/json"));
            for (name, value) in &request.headers {
                let (name, value) = auth_header(name, value)?;
                builder = builder.header(name, value);
            }
            let builder = builder.body(request.body.clone());
            self.send(&request.url, builder).await
        })
    }

    fn get<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<TransportResponse, TransportError>> {
        Box::pin(async move {
            let builder = self
                .client
                .get(url.clone())
                .header(ACCEPT, HeaderValue::from_static("application/json"));
            self.send(url, builder).await
        })
    }
}

/// One header of [`FormPost::headers`], marked sensitive (HTTP/2 never indexes it). The error
/// names the header, never its value: that is a credential.
fn auth_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), TransportError> {
    let invalid = || TransportError {
        kind: TransportKind::Other,
        message: format!("the request header {name:?} has an invalid name or value; not sent"),
    };
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
    let mut value = HeaderValue::from_str(value).map_err(|_| invalid())?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// Turns a reqwest error into a kind and a message that says why, e.g.
/// "TLS handshake with host:443 failed: invalid peer certificate: UnknownIssuer".
fn classify(url: &Url, e: &reqwest::Error) -> TransportError {
    let target = match (url.host_str(), url.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => url.to_string(),
    };
    let why = error_chain(e);
    let tls = looks_like_tls(e);
    let (kind, message) = if e.is_timeout() {
        (
            TransportKind::Timeout,
            format!("request to {url} timed out ({why})"),
        )
    } else if tls {
        (
            TransportKind::Tls,
            format!("TLS handshake with {target} failed: {why}"),
        )
    } else if e.is_connect() {
        (
            TransportKind::Connect,
            format!("could not connect to {target}: {why}"),
        )
    } else {
        (
            TransportKind::Other,
            format!("request to {url} failed: {why}"),
        )
    };
    TransportError { kind, message }
}

/// An error and its sources in one line: the useful causes joined with ": ", skipping reqwest's
/// and hyper's generic wrappers ("error sending request for url …", "client error (Connect)")
/// and repeats. Every message about a failed HTTP exchange (here, and `m2m jwks check`'s) is
/// built with it.
pub fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        let generic = s.starts_with("error sending request")
            || s.starts_with("client error (")
            || s.starts_with("error decoding response body")
            || s.starts_with("request or response body error");
        if !generic && !parts.iter().any(|p| p == &s) {
            parts.push(s);
        }
        cur = err.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// Whether `err` is a rustls error, possibly inside nested `io::Error`s (tokio-rustls wraps it
/// twice: `Other` around `InvalidData`). `io::Error::source` skips the wrapped error itself, so
/// the ordinary source chain never shows it.
fn is_rustls(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: &(dyn StdError + 'static) = err;
    for _ in 0..8 {
        if cur.is::<rustls::Error>() {
            return true;
        }
        match cur
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => cur = inner,
            None => return false,
        }
    }
    false
}

/// Whether a failure came from TLS: a `rustls::Error` in the chain, bare or inside the
/// `io::Error` that tokio-rustls wraps it in; the words are a fallback for other wrappings.
fn looks_like_tls(e: &reqwest::Error) -> bool {
    // The outermost error names the URL, which must not decide the kind.
    let mut cur: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(err) = cur {
        if is_rustls(err) {
            return true;
        }
        let s = err.to_string().to_ascii_lowercase();
        if s.contains("certificate") || s.contains("tls") || s.contains("handshake") {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-request HTTP/1.1 server on 127.0.0.1 that returns the raw request head it received.
    async fn one_request_server() -> (Url, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!(
            "http://{}/oauth2/token",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed before the request head");
                request.extend_from_slice(&buf[..n]);
            }
            let body = br#"{"access_token":"t","token_type":"Bearer"}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            socket.write_all(body).await.unwrap();
            String::from_utf8_lossy(&request).into_owned()
        });
        (url, handle)
    }

    #[tokio::test]
    async fn headers_of_the_client_authentication_reach_the_server() {
        let (url, server) = one_request_server().await;
        let transport = ReqwestTransport::new(&TransportConfig::default()).unwrap();
        let request = FormPost {
            url,
            headers: vec![("Authorization".into(), "Basic Y2xpZW50OnNlY3JldA==".into())],
            body: "grant_type=client_credentials".into(),
        };
        let debug = format!("{request:?}");
        assert!(!debug.contains("Y2xpZW50OnNlY3JldA"), "{debug}");
        let response = transport.post_form(&request).await.unwrap();
        assert_eq!(response.status, 200);
        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(
            head.contains("\r\nauthorization: basic y2xpzw50onnly3jlda==\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\ncontent-type: application/x-www-form-urlencoded\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn an_unsendable_header_fails_without_showing_its_value() {
        let transport = ReqwestTransport::new(&TransportConfig::default()).unwrap();
        let request = FormPost {
            url: Url::parse("http://127.0.0.1:9/token").unwrap(),
            headers: vec![("Authorization".into(), "Basic secret\r\nx".into())],
            body: String::new(),
        };
        let err = transport.post_form(&request).await.unwrap_err();
        assert_eq!(err.kind, TransportKind::Other);
        assert!(!err.message.contains("secret"), "{}", err.message);
    }
}
