//! The crate's one error type: why a document could not be obtained or used.
//!
//! Errors are `Clone` because the JWKS cache remembers the last failure and hands the same error
//! to every caller during the back-off. They carry strings, never key material and never a
//! response body beyond a short escaped excerpt (a JWKS body may hold a leaked private key).

use std::time::Duration;

/// Why a URL, a fetch or a document was refused. Every message says what to change.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The string is not a URL at all.
    #[error("{url:?} is not a valid URL: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// The parser's reason.
        reason: String,
    },
    /// The scheme is neither https nor http, or the URL has no host.
    #[error("{url}: only https URLs with a host are supported")]
    UnsupportedUrl {
        /// The URL (credentials removed).
        url: String,
    },
    /// The URL carries user credentials or a fragment, which have no place in a fetch.
    #[error("{url}: the URL must not contain {what}; remove it")]
    UrlHasForbiddenPart {
        /// The URL (credentials removed).
        url: String,
        /// "user credentials" or "a fragment".
        what: &'static str,
    },
    /// Plain http to a host that is not loopback.
    #[error(
        "{url}: plain http is only allowed to a loopback address; use https \
         (or, on a closed test network only, UrlPolicy::dangerous_allow_insecure_http)"
    )]
    InsecureHttp {
        /// The URL (credentials removed).
        url: String,
    },
    /// The policy requires a path and the URL has none (NHS refuses `https://host` as a
    /// `jwks_uri`).
    #[error("{url}: the URL has no path; give the full document URL, e.g. https://host/jwks.json")]
    UrlWithoutPath {
        /// The URL (credentials removed).
        url: String,
    },
    /// The HTTP client could not be built (TLS roots, for instance).
    #[error("cannot build the HTTP client: {reason}")]
    Client {
        /// reqwest's reason.
        reason: String,
    },
    /// Connecting, TLS or reading the response failed.
    #[error("fetching {url} failed: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// The transport error with its sources.
        reason: String,
    },
    /// No complete answer within the timeout.
    #[error("fetching {url}: no answer within {}s; check that the host is up and reachable", after.as_secs_f32())]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The host answered with a status other than 200 (redirects are never followed).
    #[error("fetching {url}: HTTP {status}{}", status_hint(*status))]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The body exceeded the cap; the download was stopped there.
    #[error("fetching {url}: body larger than {limit} bytes; publish a smaller document")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// The body is not a usable JWKS.
    #[error("{url}: not a usable JWKS: {source}")]
    InvalidJwks {
        /// The URL (empty when the JWKS did not come from a URL).
        url: String,
        /// What is wrong with it.
        source: JwksError,
    },
    /// The body is not usable metadata (not a JSON object, a member of the wrong type, a
    /// required member missing, an endpoint URL the policy refuses).
    #[error("{url}: unusable metadata: {reason}")]
    InvalidMetadata {
        /// The metadata URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The metadata's `issuer` is not exactly the configured issuer (RFC 8414 §3.3).
    #[error(
        "the metadata names issuer {published:?}, which is not exactly the configured issuer \
         {expected:?} (RFC 8414 §3.3); configure the issuer exactly as the server publishes it"
    )]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// What the metadata says.
        published: String,
    },
    /// The protected-resource metadata's `resource` is not exactly the resource asked about
    /// (RFC 9728 §3.3).
    #[error(
        "the metadata names resource {published:?}, which is not exactly the resource \
         {expected:?} (RFC 9728 §3.3); the metadata belongs to another resource"
    )]
    ResourceMismatch {
        /// The resource identifier used to find the metadata.
        expected: String,
        /// What the metadata says.
        published: String,
    },
    /// None of the well-known locations had metadata.
    #[error("no metadata found for {issuer} at {}", tried.join(", "))]
    MetadataNotFound {
        /// The issuer or resource.
        issuer: String,
        /// The URLs tried, each with its status.
        tried: Vec<String>,
    },
}

fn status_hint(status: u16) -> &'static str {
    if (300..400).contains(&status) {
        " (redirects are not followed; publish the document at the final URL)"
    } else {
        ""
    }
}

/// Why a JWKS document was refused. Never carries key material.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not JSON, or not `{"keys": [...]}` of JWK objects.
    #[error("{reason}")]
    Malformed {
        /// The parser's reason (no body content).
        reason: String,
    },
    /// A key holds private members: the key has leaked.
    #[error("{reason} — a JWKS holds public keys only; rotate that key")]
    PrivateMembers {
        /// Which members, from m2m-core.
        reason: String,
    },
    /// One key cannot be used (unknown `kty`/`crv`, RSA too small, bad encoding).
    #[error("key {kid}: {reason}")]
    BadKey {
        /// The key's kid, or "(no kid)".
        kid: String,
        /// Why.
        reason: String,
    },
    /// One key names an `alg` m2m does not know.
    #[error("key {kid}: unknown `alg` {alg:?}")]
    UnknownAlg {
        /// The key's kid, or "(no kid)".
        kid: String,
        /// The `alg` as published.
        alg: String,
    },
    /// No key with `use` `sig` (or without `use`).
    #[error("the JWKS holds no signature keys")]
    NoSignatureKeys,
    /// Every signature key was skipped as unusable (each reason as a [`JwksError::BadKey`] or
    /// [`JwksError::UnknownAlg`] message).
    #[error("the JWKS holds no usable signature key ({})", skipped.join("; "))]
    NoUsableKeys {
        /// Why each key was skipped, naming it by kid.
        skipped: Vec<String>,
    },
    /// Two signature keys share a `kid`: which one verifies would depend on document order.
    #[error("two keys have kid {kid:?}; each key in a JWKS needs its own kid")]
    DuplicateKid {
        /// The repeated kid.
        kid: String,
    },
}

/// A short, escaped excerpt of a response body for an error message: at most 60 bytes, control
/// characters and non-ASCII escaped, so a hostile body cannot forge log lines.
pub(crate) fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 60;
    let shown: String = body
        .iter()
        .take(MAX)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if body.len() > MAX {
        format!("\"{shown}…\"")
    } else {
        format!("\"{shown}\"")
    }
}
