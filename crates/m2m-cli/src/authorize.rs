//! What `m2m call` and `m2m proxy` put on an API request, and how they read a refusal: the one
//! place in the binary that turns an access token into headers for a given method and URL, by
//! m2m-client's rule (`m2m_client::authorization`): `Bearer <token>`, or for a DPoP-bound token
//! `DPoP <token>` with a fresh proof (htm, htu = the URL as addressed without its query, ath,
//! and the API's nonce when it gave one).

use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use m2m_client::DpopKey;
use m2m_core::clock::{Clock, SystemClock};
use url::Url;

/// The `DPoP` request header.
const DPOP: HeaderName = HeaderName::from_static("dpop");

/// The authorization headers for one request to `method url` with `token` (bound to `dpop`
/// when it is a DPoP token; `nonce`: the API's latest `DPoP-Nonce`). The values are marked
/// sensitive (hyper's logs and `Debug` leave them out).
pub(crate) fn headers_for(
    token: &str,
    dpop: Option<&DpopKey>,
    method: &Method,
    url: &Url,
    nonce: Option<&str>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let auth = m2m_client::authorization::api_authorization(
        token,
        dpop,
        method.as_str(),
        url.as_str(),
        nonce,
        SystemClock.now(),
    )
    .map_err(|e| format!("cannot sign the DPoP proof: {e}"))?;
    let sensitive = |v: &str| {
        let mut value = HeaderValue::try_from(v)
            .map_err(|_| "the access token has characters a header cannot carry".to_owned())?;
        value.set_sensitive(true);
        Ok::<_, String>(value)
    };
    let mut headers = vec![(header::AUTHORIZATION, sensitive(auth.authorization())?)];
    if let Some(proof) = auth.dpop() {
        headers.push((DPOP, sensitive(proof)?));
    }
    Ok(headers)
}

/// The nonce a `401 use_dpop_nonce` answer asks the next proof to carry (RFC 9449 §9), if the
/// answer is one and names it.
pub(crate) fn nonce_asked(status: StatusCode, headers: &HeaderMap) -> Option<String> {
    let asks = m2m_client::authorization::asks_for_nonce(
        status.as_u16(),
        headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    asks.then(|| dpop_nonce(headers)).flatten()
}

/// The answer's `DPoP-Nonce` header, if any.
pub(crate) fn dpop_nonce(headers: &HeaderMap) -> Option<String> {
    headers
        .get("dpop-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
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
    headers.remove(DPOP);
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
    fn dpop_headers_carry_a_proof_and_a_nonce_challenge_is_read() {
        use m2m_core::validate::{DpopRequest, DpopValidator};

        let key = DpopKey::ephemeral().unwrap_or_else(|_| unreachable!());
        let url = Url::parse("https://api.example/x?q=1").unwrap_or_else(|_| unreachable!());
        let h = headers_for("tok", Some(&key), &Method::POST, &url, Some("n1")).unwrap_or_default();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].1.to_str().ok(), Some("DPoP tok"));
        assert!(h[1].0 == DPOP && h[1].1.is_sensitive());
        let request = DpopRequest::new("POST", "https://api.example/x")
            .access_token("tok")
            .bound_to(key.thumbprint())
            .nonces(&["n1"]);
        let proof = h[1].1.to_str().unwrap_or_default();
        assert!(
            DpopValidator::default()
                .validate(proof, &request, SystemClock.now())
                .is_ok()
        );

        let mut answer = challenge(r#"DPoP error="use_dpop_nonce""#);
        assert_eq!(nonce_asked(StatusCode::UNAUTHORIZED, &answer), None);
        answer.insert("dpop-nonce", HeaderValue::from_static("n2"));
        assert_eq!(
            nonce_asked(StatusCode::UNAUTHORIZED, &answer).as_deref(),
            Some("n2")
        );
        assert_eq!(nonce_asked(StatusCode::BAD_REQUEST, &answer), None);
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
        let h = headers_for("tok", None, &Method::GET, &url, None).unwrap_or_default();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].1.to_str().ok(), Some("Bearer tok"));
        assert!(h[0].1.is_sensitive());
        assert!(headers_for("a\nb", None, &Method::GET, &url, None).is_err());
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
