//! The URL a request was addressed to, as the client saw it: what a DPoP proof's `htu` must name
//! (RFC 9449 §4.3). Pure: request parts in, a URL string out (the core validator normalises both
//! sides before comparing).
//!
//! Behind a reverse proxy or TLS terminator the request this process sees is not the one the
//! client sent (another scheme, host or path prefix), so an external base URL is configured and
//! the request's path appended to it. Without one, the URL is the configured scheme, the
//! request's authority (HTTP/2 `:authority`, else the `Host` header) and its path. The `Host`
//! header is the client's own statement, so a deployment reachable under several names should
//! set the external URL.

use axum::http::Uri;

use crate::error::Refusal;

/// Where a resource is reached from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addressed {
    /// Behind a proxy: this base URL (scheme, host, port, optional path prefix) plus the path.
    External(String),
    /// Directly: this scheme (`http` or `https`), the request's authority and its path.
    Direct {
        /// `http` or `https`.
        scheme: &'static str,
    },
}

impl Addressed {
    /// The base URL `base` (any trailing `/` dropped: the request path brings its own).
    pub fn external(base: &str) -> Self {
        Addressed::External(base.trim_end_matches('/').to_owned())
    }

    /// The URL of a request with target `uri` and `Host` header values `host`.
    pub fn request_url(&self, uri: &Uri, host: &[&[u8]]) -> Result<String, Refusal> {
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        match self {
            Addressed::External(base) => Ok(format!("{base}{path}")),
            Addressed::Direct { scheme } => {
                let authority = match uri.authority() {
                    Some(a) => a.as_str(),
                    None => host_header(host)?,
                };
                Ok(format!("{scheme}://{authority}{path}"))
            }
        }
    }
}

/// The one `Host` header, if it is a plausible authority (no path, user information or spaces).
fn host_header<'a>(host: &[&'a [u8]]) -> Result<&'a str, Refusal> {
    let [one] = host else {
        return Err(Refusal::InvalidRequest(
            "a DPoP request needs exactly one Host header".into(),
        ));
    };
    std::str::from_utf8(one)
        .ok()
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'@' | b'?' | b'#'))
        })
        .ok_or_else(|| Refusal::InvalidRequest("the Host header is not a host[:port]".into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn direct_requests_use_the_scheme_setting_and_host() {
        let a = Addressed::Direct { scheme: "http" };
        let uri: Uri = "/v1/things?x=1".parse().unwrap();
        assert_eq!(
            a.request_url(&uri, &[b"127.0.0.1:8080"]).unwrap(),
            "http://127.0.0.1:8080/v1/things"
        );
        let absolute: Uri = "https://api.example/x".parse().unwrap();
        assert_eq!(
            a.request_url(&absolute, &[b"other"]).unwrap(),
            "http://api.example/x",
            "the authority of an absolute target wins over Host; the scheme is the setting's"
        );
        for bad in [
            &[][..],
            &[&b"a"[..], &b"b"[..]][..],
            &[&b"evil/x"[..]][..],
            &[&b"u@h"[..]][..],
        ] {
            assert_eq!(a.request_url(&uri, bad).unwrap_err().status(), 400);
        }
    }

    #[test]
    fn behind_a_proxy_the_external_url_is_the_base() {
        let a = Addressed::external("https://api.example.com/prefix/");
        let uri: Uri = "/v1/things".parse().unwrap();
        assert_eq!(
            a.request_url(&uri, &[]).unwrap(),
            "https://api.example.com/prefix/v1/things"
        );
        let a = Addressed::external("https://api.example.com");
        assert_eq!(
            a.request_url(&uri, &[b"10.0.0.5:8080"]).unwrap(),
            "https://api.example.com/v1/things",
            "the Host header is ignored"
        );
    }
}
