//! What `m2m call` and `m2m proxy` put on an API request, and how they read a refusal: the one
//! place that turns an access token into headers for a given method and URL. Bearer today; a
//! DPoP-bound token will add its per-request proof (which signs the method and URL) here.

use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use url::Url;

/// The authorization headers for one request to `method url` with `token`. The values are
/// marked sensitive (hyper's logs and `Debug` leave them out).
pub(crate) fn headers_for(
    token: &str,
    _method: &Method,
    _url: &Url,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut value = HeaderValue::try_from(format!("Bearer {token}"))
        .map_err(|_| "the access token has characters a header cannot carry".to_owned())?;
    value.set_sensitive(true);
    Ok(vec![(header::AUTHORIZATION, value)])
}

/// Parses the URL of an API a token will be sent to: https, or http to a loopback host only
/// (a bearer token in clear text is anyone's) unless `dangerous_allow_insecure_http`; no
/// fragment.
pub(crate) fn api_url(value: &str, dangerous_allow_insecure_http: bool) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("{value:?} is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback || dangerous_allow_insecure_http => {}
        "http" => {
            return Err(format!(
                "{url} is plain http to a non-loopback host: the token would travel in clear text"
            ));
        }
        other => {
            return Err(format!(
                "{url}: unsupported scheme {other:?} (https or http)"
            ));
        }
    }
    if url.fragment().is_some() {
        return Err(format!("{url}: a URL with a #fragment cannot be requested"));
    }
    Ok(url)
}

/// Removes whatever credentials the caller sent: only the token this client adds may reach the
/// upstream.
pub(crate) fn strip_incoming(headers: &mut HeaderMap) {
    headers.remove(header::AUTHORIZATION);
    headers.remove(HeaderName::from_static("dpop"));
}

/// Whether the API refused the token itself (401 with `error="invalid_token"` in a
/// `WWW-Authenticate` challenge, RFC 6750 §3.1): the one answer worth a new token and one retry.
pub(crate) fn is_invalid_token(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::UNAUTHORIZED
        && headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                let v = v.to_ascii_lowercase();
                v.contains("error=\"invalid_token\"") || v.contains("error=invalid_token")
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn only_a_401_invalid_token_challenge_counts() {
        let invalid =
            challenge(r#"Bearer realm="api", error="invalid_token", error_description="expired""#);
        assert!(is_invalid_token(StatusCode::UNAUTHORIZED, &invalid));
        assert!(is_invalid_token(
            StatusCode::UNAUTHORIZED,
            &challenge("DPoP error=invalid_token")
        ));
        assert!(!is_invalid_token(StatusCode::FORBIDDEN, &invalid));
        assert!(!is_invalid_token(
            StatusCode::UNAUTHORIZED,
            &challenge(r#"Bearer realm="api""#)
        ));
        assert!(!is_invalid_token(
            StatusCode::UNAUTHORIZED,
            &challenge(r#"Bearer error="insufficient_scope""#)
        ));
        assert!(!is_invalid_token(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new()
        ));
    }

    #[test]
    fn api_urls_are_https_or_loopback_http() {
        assert!(api_url("https://api.example/x", false).is_ok());
        assert!(api_url("http://127.0.0.1:9/x", false).is_ok());
        assert!(api_url("http://localhost:9/x", false).is_ok());
        assert!(api_url("http://api.example/x", false).is_err());
        assert!(api_url("http://api.example/x", true).is_ok());
        assert!(api_url("ftp://api.example/x", true).is_err());
        assert!(api_url("https://api.example/x#f", false).is_err());
    }

    #[test]
    fn bearer_header_is_sensitive_and_incoming_credentials_go() {
        let url = Url::parse("https://api.example/x").unwrap_or_else(|_| unreachable!());
        let h = headers_for("tok", &Method::GET, &url).unwrap_or_default();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].1.to_str().ok(), Some("Bearer tok"));
        assert!(h[0].1.is_sensitive());
        assert!(headers_for("a\nb", &Method::GET, &url).is_err());
        let mut incoming = HeaderMap::new();
        incoming.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer spoof"),
        );
        incoming.insert("dpop", HeaderValue::from_static("proof"));
        incoming.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_incoming(&mut incoming);
        assert_eq!(incoming.len(), 1);
    }
}
