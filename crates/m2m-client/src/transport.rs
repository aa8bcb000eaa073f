//! The seam between the token client and HTTP: a [`TokenTransport`] POSTs one form and returns
//! status, the two headers the client reads, and the body.
//!
//! The default is [`crate::ReqwestTransport`]; tests and token caches can plug in their own.
//! Keeping the seam this narrow means a transport cannot get the protocol wrong: the form body
//! and its Content-Type are decided by the client, the transport only carries them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use url::Url;

use crate::error::{Error, TransportKind};

/// The media type of every token request, bare: NHS answers 415 to anything else, a
/// `; charset=…` suffix included.
pub use m2m_core::wire::FORM_MEDIA_TYPE as FORM_CONTENT_TYPE;

/// A boxed, sendable future, as returned by [`TokenTransport`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One token request: POST `body` to `url` with `Content-Type: application/x-www-form-urlencoded`
/// and `headers`.
///
/// `Debug` omits the body and the header values: they hold the client's credentials (the
/// assertion, or an `Authorization` header).
#[derive(Clone)]
pub struct FormPost {
    /// Where to POST.
    pub url: Url,
    /// Headers the client authentication adds (e.g. `Authorization`), to send as given. Never
    /// `Content-Type`: the transport sets that one.
    pub headers: Vec<(String, String)>,
    /// The urlencoded form, to send verbatim.
    pub body: String,
}

impl fmt::Debug for FormPost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, _)| (name.as_str(), "[redacted]"))
            .collect();
        f.debug_struct("FormPost")
            .field("url", &self.url.as_str())
            .field("headers", &headers)
            .field("body", &"[redacted]")
            .finish()
    }
}

/// What the client needs from an HTTP response.
#[derive(Clone, Debug, Default)]
pub struct TransportResponse {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, if present and readable.
    pub content_type: Option<String>,
    /// The `Retry-After` header, if present and readable.
    pub retry_after: Option<String>,
    /// The `Location` header of a redirect, if present and readable (reported, never followed).
    pub location: Option<String>,
    /// The `DPoP-Nonce` header (RFC 9449 §8), if present and readable.
    pub dpop_nonce: Option<String>,
    /// The body (a transport may truncate very large bodies).
    pub body: Vec<u8>,
}

/// A failed exchange: no HTTP response was received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    /// Which part failed.
    pub kind: TransportKind,
    /// Why, in words; must not contain the request body.
    pub message: String,
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Error::Transport {
            kind: e.kind,
            message: e.message,
        }
    }
}

/// Sends token requests (and, for discovery, metadata GETs).
///
/// Implementations must not follow redirects: a redirect would resend the client assertion to
/// whichever host the response names.
pub trait TokenTransport: Send + Sync + fmt::Debug {
    /// POSTs `request.body` with `Content-Type` exactly [`FORM_CONTENT_TYPE`] and
    /// `request.headers`.
    fn post_form<'a>(
        &'a self,
        request: &'a FormPost,
    ) -> BoxFuture<'a, Result<TransportResponse, TransportError>>;

    /// GETs a JSON document (authorization-server metadata). Transports used only for token
    /// requests may keep this default, which refuses.
    fn get<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<TransportResponse, TransportError>> {
        Box::pin(async move {
            Err(TransportError {
                kind: TransportKind::Other,
                message: format!("this transport cannot GET {url}"),
            })
        })
    }
}
