//! The crate's one error type: what went wrong while getting a token, and whether to try again.
//!
//! Every message says what failed and, where possible, what to do about it. None of them ever
//! contains a client assertion, an access token or key material: bodies are only kept when they
//! cannot carry a token (see [`Error::UnparseableBody`]).

use std::fmt;
use std::time::Duration;

use crate::hint::Hint;

/// Why getting a token failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token endpoint answered with an HTTP error status (RFC 6749 §5.2 error response).
    ///
    /// The server's fields are kept verbatim (and shown escaped); [`Error::hint`] explains known
    /// NHS messages.
    #[error("{0}")]
    ServerRejected(Box<ErrorResponse>),
    /// The token endpoint answered with a redirect, which is never followed: it would resend the
    /// client assertion to another URL.
    #[error(
        "token endpoint answered HTTP {status} redirecting to {}; redirects are not followed (they \
         would resend the client assertion): configure the final token URL",
        location.as_deref().unwrap_or("(no Location)")
    )]
    Redirected {
        /// HTTP status code (3xx).
        status: u16,
        /// The `Location` header, if any.
        location: Option<String>,
    },
    /// No HTTP response was received (connection, TLS, timeout, …).
    #[error("{message}")]
    Transport {
        /// Which part of the exchange failed.
        kind: TransportKind,
        /// Why, in words (e.g. "TLS handshake with … failed: invalid peer certificate: UnknownIssuer").
        message: String,
    },
    /// The response body was not the JSON the status called for (e.g. an HTML page from a proxy).
    #[error(
        "token endpoint answered HTTP {status} with a body that is not an OAuth JSON response \
         (content-type {}): {body_prefix:?}",
        content_type.as_deref().unwrap_or("none")
    )]
    UnparseableBody {
        /// HTTP status code.
        status: u16,
        /// The response's Content-Type, if any.
        content_type: Option<String>,
        /// The first 256 bytes of the body, decoded lossily as UTF-8 (redacted when a successful
        /// response mentions `access_token`, as it could then hold a token).
        body_prefix: String,
        /// The server's `Retry-After`, when it sent one that could be read.
        retry_after: Option<Duration>,
    },
    /// A successful JSON response without an `access_token` string.
    #[error(
        "token endpoint answered HTTP {status} without an access_token (members present: {})",
        if members.is_empty() { "none".to_owned() } else { members.join(", ") }
    )]
    MissingAccessToken {
        /// HTTP status code.
        status: u16,
        /// Names (never values) of the members the response had.
        members: Vec<String>,
    },
    /// A successful response whose members are unusable (e.g. negative `expires_in`).
    #[error("token endpoint answered HTTP {status} with an invalid token response: {reason}")]
    InvalidResponse {
        /// HTTP status code.
        status: u16,
        /// What is wrong with it.
        reason: String,
    },
    /// Authorization-server metadata (RFC 8414) could not be used.
    #[error("discovery for issuer {issuer:?} failed: {reason}")]
    Discovery {
        /// The configured issuer.
        issuer: String,
        /// What went wrong.
        reason: String,
    },
    /// Finding the authorization server from a resource URL (RFC 9728) failed.
    #[error("discovery from resource {resource:?} failed: {reason}")]
    ResourceDiscovery {
        /// The resource URL asked about.
        resource: String,
        /// What went wrong.
        reason: String,
    },
    /// The client is configured wrongly; nothing was sent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The client assertion could not be built or signed; nothing was sent.
    #[error("could not create the client assertion: {0}")]
    Assertion(#[source] m2m_core::Error),
    /// The DPoP key could not be made or could not sign a proof; nothing was sent.
    #[error("could not create the DPoP proof: {0}")]
    DpopProof(#[source] m2m_core::Error),
    /// The federated assertion could not be read, run or fetched (file, command, variable,
    /// GitHub Actions); nothing was sent to the token endpoint.
    #[error("no federated assertion: {0}")]
    AssertionSource(#[source] crate::assertion_source::AssertionSourceError),
}

/// An RFC 6749 §5.2 error response, as the token endpoint sent it (plus NHS's `message_id`).
///
/// `Display` is one line: status, code, description, URI and message id, with control characters
/// of the server's strings escaped (`\r`, `\n`, `\x1b`, …) so a hostile server cannot forge log
/// lines or drive a terminal. The hint is not part of it: see [`ErrorResponse::hint`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// HTTP status code.
    pub status: u16,
    /// RFC 6749 `error` code, e.g. `invalid_client` (absent if the body was empty).
    pub error: Option<String>,
    /// RFC 6749 `error_description`, verbatim.
    pub error_description: Option<String>,
    /// RFC 6749 `error_uri`, verbatim.
    pub error_uri: Option<String>,
    /// NHS `message_id`, to quote to NHS support.
    pub message_id: Option<String>,
    /// The server's `Retry-After`, when it sent one that could be read.
    pub retry_after: Option<Duration>,
    /// Explanation of a known NHS message.
    pub hint: Option<Hint>,
}

impl ErrorResponse {
    /// An error response with only a status; the other members are set field by field.
    pub fn new(status: u16) -> Self {
        ErrorResponse {
            status,
            error: None,
            error_description: None,
            error_uri: None,
            message_id: None,
            retry_after: None,
            hint: None,
        }
    }

    /// Whether the error code says that retrying cannot help, whatever the status.
    fn is_final(&self) -> bool {
        matches!(
            self.error.as_deref(),
            Some("invalid_client" | "invalid_request" | "unauthorized_client")
        )
    }
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "token endpoint rejected the request: HTTP {}",
            self.status
        )?;
        match &self.error {
            Some(e) => write!(f, " {}", Escaped(e))?,
            None => f.write_str(" (no OAuth error body)")?,
        }
        if let Some(d) = &self.error_description {
            write!(f, ": {}", Escaped(d))?;
        }
        if let Some(u) = &self.error_uri {
            write!(f, " (see {})", Escaped(u))?;
        }
        if let Some(m) = &self.message_id {
            write!(f, " [message_id {}]", Escaped(m))?;
        }
        Ok(())
    }
}

/// Shows a server-supplied string with its control characters (C0, DEL, C1) escaped: `\r`,
/// `\n`, `\t`, else `\xNN` / `\u{NN}`. Everything else, non-ASCII text included, is shown as
/// sent.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\r' => f.write_str("\\r")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                c if (c as u32) < 0x80 && c.is_control() => write!(f, "\\x{:02x}", c as u32)?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => write!(f, "{c}")?,
            }
        }
        Ok(())
    }
}

/// Which part of the HTTP exchange failed, for [`Error::Transport`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// The connect or total timeout elapsed.
    Timeout,
    /// No connection could be made (refused, unreachable, DNS failure).
    Connect,
    /// The TLS handshake failed (e.g. untrusted certificate). Not retried: it will fail again.
    Tls,
    /// Anything else (connection reset mid-response, protocol error, body read error).
    Other,
}

/// A configuration mistake found before anything was sent.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required builder part was not set.
    #[error("token client configuration is missing the {0}")]
    Missing(&'static str),
    /// The token URL does not parse.
    #[error("token URL {url:?} is not a valid URL: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// The parser's reason.
        reason: String,
    },
    /// The token URL uses plain http to a non-loopback host.
    #[error(
        "token URL {url:?} uses plain http to a non-loopback host; use https (plain http would \
         expose the client assertion and the token), or allow it explicitly with \
         dangerous_allow_insecure_http()"
    )]
    InsecureHttp {
        /// The URL as given.
        url: String,
    },
    /// The token URL has a scheme other than http(s), or has no host.
    #[error("token URL {url:?} must be an https URL with a host")]
    UnsupportedUrl {
        /// The URL as given.
        url: String,
    },
    /// The token URL carries a fragment or credentials, which have no place in a token request.
    #[error("token URL {url:?} must not contain {what}")]
    UrlHasForbiddenPart {
        /// The URL as given (credentials removed).
        url: String,
        /// "a fragment" or "user credentials".
        what: &'static str,
    },
    /// The signer does not fit the profile (e.g. NHS needs RS512 and a kid).
    #[error("{0}")]
    Profile(String),
    /// Any other invalid setting.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Whether trying again (with a fresh assertion) can succeed: network errors, timeouts, 5xx
    /// and 429, but never `invalid_client`, `invalid_request` or `unauthorized_client`.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::ServerRejected(r) => !r.is_final() && retryable_status(r.status),
            Error::UnparseableBody { status, .. } => retryable_status(*status),
            Error::Transport { kind, .. } => {
                matches!(
                    kind,
                    TransportKind::Timeout | TransportKind::Connect | TransportKind::Other
                )
            }
            _ => false,
        }
    }

    /// How long the server asked to wait before the next attempt (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::ServerRejected(r) => r.retry_after,
            Error::UnparseableBody { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The hint for a known server message, if any.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Error::ServerRejected(r) => r.hint,
            _ => None,
        }
    }

    /// The HTTP status, when a response was received.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::ServerRejected(r) => Some(r.status),
            Error::UnparseableBody { status, .. }
            | Error::MissingAccessToken { status, .. }
            | Error::InvalidResponse { status, .. }
            | Error::Redirected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16, error: Option<&str>) -> Error {
        let mut r = ErrorResponse::new(status);
        r.error = error.map(str::to_owned);
        Error::ServerRejected(Box::new(r))
    }

    #[test]
    fn retry_rules() {
        assert!(rejected(503, None).is_retryable());
        assert!(rejected(500, Some("server_error")).is_retryable());
        assert!(rejected(429, None).is_retryable());
        assert!(!rejected(400, Some("invalid_grant")).is_retryable());
        assert!(!rejected(401, None).is_retryable());
        for code in ["invalid_client", "invalid_request", "unauthorized_client"] {
            assert!(!rejected(503, Some(code)).is_retryable(), "{code}");
            assert!(!rejected(429, Some(code)).is_retryable(), "{code}");
        }
        let tls = Error::Transport {
            kind: TransportKind::Tls,
            message: String::new(),
        };
        assert!(!tls.is_retryable());
        let timeout = Error::Transport {
            kind: TransportKind::Timeout,
            message: String::new(),
        };
        assert!(timeout.is_retryable());
        let html = Error::UnparseableBody {
            status: 502,
            content_type: None,
            body_prefix: String::new(),
            retry_after: None,
        };
        assert!(html.is_retryable());
        assert!(
            !Error::MissingAccessToken {
                status: 200,
                members: vec![]
            }
            .is_retryable()
        );
    }

    #[test]
    fn display_is_specific() {
        let mut r = ErrorResponse::new(401);
        r.error = Some("invalid_request".into());
        r.error_description = Some("Missing or invalid 'aud' claim in client_assertion JWT".into());
        r.message_id = Some("rrt-123".into());
        r.hint = Some(Hint::Audience);
        let e = Error::ServerRejected(Box::new(r));
        let s = e.to_string();
        assert!(
            s.contains("HTTP 401 invalid_request: Missing or invalid 'aud' claim"),
            "{s}"
        );
        assert!(s.contains("[message_id rrt-123]"), "{s}");
        // The hint is not part of the message; it stays available on its own.
        assert!(!s.contains("hint"), "{s}");
        assert!(!s.contains('\n'), "{s}");
        assert_eq!(e.hint(), Some(Hint::Audience));
        assert!(
            e.hint()
                .unwrap()
                .to_string()
                .starts_with("the assertion's aud"),
            "{:?}",
            e.hint()
        );
    }

    /// A hostile server must not forge log lines or drive the terminal through its error body.
    #[test]
    fn display_escapes_control_characters_from_the_server() {
        let mut r = ErrorResponse::new(400);
        r.error = Some("invalid_request\r\nerror: forged line".into());
        r.error_description =
            Some("red \x1b[31mtext\x1b[0m, tab\t, bell\x07, del\x7f, c1\u{9b}2J".into());
        r.error_uri = Some("https://x/\n".into());
        r.message_id = Some("id\0".into());
        let s = Error::ServerRejected(Box::new(r)).to_string();
        assert_eq!(
            s,
            "token endpoint rejected the request: HTTP 400 invalid_request\\r\\nerror: forged line: \
             red \\x1b[31mtext\\x1b[0m, tab\\t, bell\\x07, del\\x7f, c1\\u{9b}2J \
             (see https://x/\\n) [message_id id\\x00]"
        );
        assert!(!s.chars().any(char::is_control), "{s:?}");
        // Non-ASCII text is shown as sent.
        let mut r = ErrorResponse::new(400);
        r.error_description = Some("clé: ungültig".into());
        assert!(r.to_string().ends_with(": clé: ungültig"));
    }

    /// Keeps `Result<_, Error>` cheap to move and clippy's `result_large_err` quiet for callers.
    #[test]
    fn error_stays_small() {
        assert!(size_of::<Error>() <= 128, "{}", size_of::<Error>());
    }
}
