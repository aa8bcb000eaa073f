//! The one way this crate talks HTTP: a GET that follows no redirect, has a whole-request
//! timeout, checks the URL policy before connecting, and stops reading the body at a cap.
//!
//! Redirects are refused because the URL policy was applied to the URL we were given: following
//! a `Location` would let the host send us to plain http or to an internal address.

use std::time::Duration;

use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, LOCATION};
use url::Url;

use crate::error::Error;
use crate::policy::{UrlPolicy, shown};

/// An HTTP client for documents. Cheap to clone (reqwest's pool is shared).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    timeout: Duration,
}

/// A response: status, the headers the callers use, and the body (read only for a 200).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// The URL fetched.
    pub url: Url,
    /// The HTTP status.
    pub status: u16,
    /// `Content-Type`, if present and ASCII.
    pub content_type: Option<String>,
    /// `Cache-Control`, if present and ASCII.
    pub cache_control: Option<String>,
    /// `Location` (of a redirect we did not follow), if present and ASCII.
    pub location: Option<String>,
    /// The body, at most the cap given to [`HttpClient::get`]; empty unless the status is 200.
    pub body: Vec<u8>,
    /// Whether the body went past the cap (only from [`HttpClient::get_truncating`]; the
    /// download was stopped there and `body` is incomplete).
    pub truncated: bool,
}

impl HttpClient {
    /// A client with this whole-request timeout and the user agent `m2m-discovery/VERSION`.
    pub fn new(timeout: Duration) -> Result<HttpClient, Error> {
        HttpClient::with_user_agent(
            timeout,
            concat!("m2m-discovery/", env!("CARGO_PKG_VERSION")),
        )
    }

    /// A client with this timeout and user agent (the server says `m2m-server/…`).
    pub fn with_user_agent(timeout: Duration, user_agent: &str) -> Result<HttpClient, Error> {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(user_agent)
            .build()
            .map_err(|e| Error::Client {
                reason: source_chain(&e),
            })?;
        Ok(HttpClient { inner, timeout })
    }

    /// The whole-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// GETs `url` after checking it against `policy`, with `Accept: accept`. The body of a 200 is
    /// read up to `max_bytes` ([`Error::TooLarge`] past it, announced or not); other statuses are
    /// returned without reading the body, for the caller to judge.
    pub async fn get(
        &self,
        url: &Url,
        policy: &UrlPolicy,
        accept: &str,
        max_bytes: usize,
    ) -> Result<Document, Error> {
        let document = self.get_truncating(url, policy, accept, max_bytes).await?;
        if document.truncated {
            return Err(Error::TooLarge {
                url: shown(url),
                limit: max_bytes,
            });
        }
        Ok(document)
    }

    /// Like [`HttpClient::get`], but a body past `max_bytes` is not an error: the download stops
    /// there and the document says `truncated` (for a report that also wants the headers).
    pub async fn get_truncating(
        &self,
        url: &Url,
        policy: &UrlPolicy,
        accept: &str,
        max_bytes: usize,
    ) -> Result<Document, Error> {
        policy.check(url)?;
        let url_s = shown(url);
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                Error::Timeout {
                    url: url_s.clone(),
                    after: self.timeout,
                }
            } else {
                Error::Transport {
                    url: url_s.clone(),
                    reason: source_chain(&e),
                }
            }
        };
        let mut response = self
            .inner
            .get(url.clone())
            .header(ACCEPT, accept)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers();
        let mut document = Document {
            url: url.clone(),
            status,
            content_type: header(headers, CONTENT_TYPE),
            cache_control: header(headers, CACHE_CONTROL),
            location: header(headers, LOCATION),
            body: Vec::new(),
            truncated: false,
        };
        if status != 200 {
            return Ok(document);
        }
        if response
            .content_length()
            .is_some_and(|len| len > max_bytes as u64)
        {
            document.truncated = true;
            return Ok(document);
        }
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if document.body.len() + chunk.len() > max_bytes {
                document.truncated = true;
                return Ok(document);
            }
            document.body.extend_from_slice(&chunk);
        }
        Ok(document)
    }
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// An error with its sources ("error sending request: … : connection refused"), without repeats.
pub(crate) fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
