//! The headers of one API request made with an access token, and how to read the API's refusal:
//! the one rule every integration (reqwest middleware, tower, blocking) and the CLI (`m2m call`,
//! `m2m proxy`) follow.
//!
//! A DPoP-bound token (the token endpoint answered `token_type: DPoP` to a request that carried
//! a proof) is sent as `Authorization: DPoP <token>` with a fresh proof in the `DPoP` header:
//! `htm` the method, `htu` the URL as the client addresses it without query and fragment, `ath`
//! the token's hash, and the resource server's latest nonce for that origin when it gave one
//! (RFC 9449 §7 and §9). Any other token goes as `Authorization: Bearer <token>`.
//!
//! A resource server asks for a nonce with `401` + `WWW-Authenticate: DPoP
//! error="use_dpop_nonce"` + `DPoP-Nonce`; the request is then worth exactly one more try with
//! the nonce in a fresh proof. Nonces are remembered per origin ([`DpopNonces`]) so the next
//! requests carry them from the start.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use m2m_core::clock::UnixTime;
use m2m_core::dpop::{Proof, ProofInput};
use m2m_core::wire::{DPOP, ERROR_USE_DPOP_NONCE};

use crate::dpop::DpopKey;
use crate::error::Error;
use crate::source::{Token, TokenSource};

/// Origins whose nonce [`DpopNonces`] keeps; beyond that the oldest half is forgotten (a client
/// talks to a handful of APIs; this only bounds memory against a hostile redirect chain).
const MAX_ORIGINS: usize = 64;

/// Longest nonce kept; a longer one is ignored (the proof, and so the request, must stay small).
const MAX_NONCE_LEN: usize = 512;

/// The `Authorization` value and, for a DPoP-bound token, the `DPoP` proof of one request.
/// `Debug` shows the scheme and the proof's `jti`, never the token or the proof.
#[derive(Clone)]
pub struct ApiAuthorization {
    authorization: String,
    proof: Option<Proof>,
}

impl fmt::Debug for ApiAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiAuthorization")
            .field("scheme", &self.scheme())
            .field("proof_jti", &self.proof.as_ref().map(Proof::jti))
            .finish_non_exhaustive()
    }
}

impl ApiAuthorization {
    /// The `Authorization` header value (`DPoP <token>` or `Bearer <token>`). Never log it.
    pub fn authorization(&self) -> &str {
        &self.authorization
    }

    /// The `DPoP` header value (the proof), for a DPoP-bound token. Never log it.
    pub fn dpop(&self) -> Option<&str> {
        self.proof.as_ref().map(Proof::as_str)
    }

    /// The proof's `jti` (for logs), for a DPoP-bound token.
    pub fn proof_jti(&self) -> Option<&str> {
        self.proof.as_ref().map(Proof::jti)
    }

    /// `DPoP` or `Bearer`.
    pub fn scheme(&self) -> &'static str {
        if self.proof.is_some() { DPOP } else { "Bearer" }
    }

    /// Puts these headers on a request: `Authorization`, and the `DPoP` proof (or no `DPoP`
    /// header at all for a bearer token, so a retried request never carries a stale proof).
    /// Both are marked sensitive, which keeps them out of `Debug` output and HTTP/2 indexing.
    pub fn apply_to(
        &self,
        headers: &mut reqwest::header::HeaderMap,
    ) -> Result<(), InvalidTokenChars> {
        use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
        let sensitive = |value: &str| {
            let mut value = HeaderValue::from_str(value).map_err(|_| InvalidTokenChars)?;
            value.set_sensitive(true);
            Ok::<_, InvalidTokenChars>(value)
        };
        headers.insert(AUTHORIZATION, sensitive(&self.authorization)?);
        let dpop = HeaderName::from_static("dpop");
        match self.dpop() {
            Some(proof) => {
                headers.insert(dpop, sensitive(proof)?);
            }
            None => {
                headers.remove(dpop);
            }
        }
        Ok(())
    }
}

/// The token holds characters an HTTP header cannot carry (the message never shows them).
#[derive(Debug, thiserror::Error)]
#[error("the access token contains characters that are not allowed in an HTTP header")]
pub struct InvalidTokenChars;

/// The headers for one request `method url` with `access_token`: with `dpop` (the key the
/// token is bound to) `DPoP <token>` and a fresh proof carrying `ath` and `nonce`; without,
/// `Bearer <token>`. `now` dates the proof.
///
/// ```
/// use m2m_client::DpopKey;
/// use m2m_client::authorization::api_authorization;
/// use m2m_core::clock::UnixTime;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = DpopKey::ephemeral()?;
/// let now = UnixTime::from_secs(1_700_000_000);
/// let auth = api_authorization("tok", Some(&key), "GET", "https://api.example/x?a=1", None, now)?;
/// assert_eq!(auth.authorization(), "DPoP tok");
/// assert!(auth.dpop().is_some());
/// let bearer = api_authorization("tok", None, "GET", "https://api.example/x", None, now)?;
/// assert_eq!(bearer.authorization(), "Bearer tok");
/// # Ok(()) }
/// ```
pub fn api_authorization(
    access_token: &str,
    dpop: Option<&DpopKey>,
    method: &str,
    url: &str,
    nonce: Option<&str>,
    now: UnixTime,
) -> Result<ApiAuthorization, Error> {
    let Some(key) = dpop else {
        return Ok(ApiAuthorization {
            authorization: format!("Bearer {access_token}"),
            proof: None,
        });
    };
    let proof = key.proof(
        &ProofInput::new(method, url)
            .access_token(access_token)
            .nonce(nonce),
        now,
    )?;
    Ok(ApiAuthorization {
        authorization: format!("{DPOP} {access_token}"),
        proof: Some(proof),
    })
}

/// Whether an API's answer is RFC 9449 §9's request for a nonce: `401` with a `WWW-Authenticate`
/// DPoP challenge whose `error` is `use_dpop_nonce`. (The nonce itself is the `DPoP-Nonce`
/// header; without one there is nothing to retry with.)
pub fn asks_for_nonce<'a>(
    status: u16,
    www_authenticate: impl IntoIterator<Item = &'a str>,
) -> bool {
    status == 401
        && www_authenticate
            .into_iter()
            .any(|v| challenge_error(v, DPOP) == Some(ERROR_USE_DPOP_NONCE))
}

/// The `error` parameter of the `scheme` challenge in one `WWW-Authenticate` value (which may
/// hold several challenges, RFC 9110 §11.6.1), e.g. `DPoP algs="ES256", error="use_dpop_nonce"`.
fn challenge_error<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let mut in_scheme = false;
    for item in split_items(value) {
        let item = item.trim();
        // A new challenge starts with a token followed by a space (or nothing) rather than `=`.
        let (head, rest) = match item.split_once(char::is_whitespace) {
            Some((head, rest)) if !head.contains('=') => (Some(head), rest.trim()),
            _ if !item.contains('=') && !item.is_empty() => (Some(item), ""),
            _ => (None, item),
        };
        if let Some(head) = head {
            in_scheme = head.eq_ignore_ascii_case(scheme);
        }
        if !in_scheme {
            continue;
        }
        if let Some((name, v)) = rest.split_once('=')
            && name.trim().eq_ignore_ascii_case("error")
        {
            return Some(v.trim().trim_matches('"'));
        }
    }
    None
}

/// Splits a header value at commas outside quoted strings.
fn split_items(value: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&value[start..]);
    items
}

/// Whether `nonce` is one a proof may carry: RFC 9449 §8.1's `1*NQCHAR`, bounded in length.
fn usable_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= MAX_NONCE_LEN
        && nonce
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// The origin (`scheme://host:port`) a nonce belongs to: RFC 9449 §9 nonces are per server.
fn origin(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

/// The latest `DPoP-Nonce` each resource server (origin) gave, so the next proofs to it carry
/// it from the start instead of paying a refused request each time.
#[derive(Debug, Default)]
pub struct DpopNonces {
    by_origin: Mutex<HashMap<String, String>>,
}

impl DpopNonces {
    /// An empty store.
    pub fn new() -> Self {
        DpopNonces::default()
    }

    /// The nonce to put in the next proof to `url`'s origin.
    pub fn get(&self, url: &str) -> Option<String> {
        let origin = origin(url)?;
        self.lock().get(&origin).cloned()
    }

    /// Remembers `nonce` for `url`'s origin; `false` when it is not a usable nonce (empty, too
    /// long, characters RFC 9449 does not allow) or the URL has no origin.
    pub fn remember(&self, url: &str, nonce: &str) -> bool {
        let Some(origin) = origin(url).filter(|_| usable_nonce(nonce)) else {
            return false;
        };
        let mut map = self.lock();
        if map.len() >= MAX_ORIGINS && !map.contains_key(&origin) {
            map.clear();
        }
        map.insert(origin, nonce.to_owned());
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.by_origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// What to do after the API answered a request (see [`ApiCalls::answered`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Nothing: return the answer.
    No,
    /// The API asked for a DPoP nonce (now remembered): send the request again, same token, fresh
    /// proof.
    WithNonce,
    /// The API refused the token (401; it is now dropped from the cache): send the request again
    /// with a fresh token.
    WithNewToken,
}

/// A [`TokenSource`] and the API nonces: what each integration needs to authorise a request
/// and to decide, from the answer, whether to send it once more. Clones share both.
#[derive(Clone, Debug)]
pub struct ApiCalls {
    source: TokenSource,
    nonces: Arc<DpopNonces>,
}

impl ApiCalls {
    /// Calls with tokens from `source`.
    pub fn new(source: TokenSource) -> Self {
        ApiCalls {
            source,
            nonces: Arc::new(DpopNonces::new()),
        }
    }

    /// The token source.
    pub fn source(&self) -> &TokenSource {
        &self.source
    }

    /// The headers for `method url` with `token` (a fresh proof with the origin's latest
    /// nonce for a DPoP-bound token), dated by the source's clock.
    pub fn authorize(
        &self,
        token: &Token,
        method: &str,
        url: &str,
    ) -> Result<ApiAuthorization, Error> {
        let nonce = token.dpop_key().and_then(|_| self.nonces.get(url));
        token.authorization(method, url, nonce.as_deref(), self.source.now())
    }

    /// Remembers the `DPoP-Nonce` of an answer to a request made with a DPoP-bound `token`
    /// (RFC 9449 §9: a resource server may send a new one on any answer), without deciding
    /// anything else; `true` if it was kept.
    pub fn remember_nonce(&self, token: &Token, url: &str, dpop_nonce: Option<&str>) -> bool {
        match (token.dpop_key(), dpop_nonce) {
            (Some(_), Some(nonce)) => self.nonces.remember(url, nonce),
            _ => false,
        }
    }

    /// Reads the answer to a request made with `token`: remembers a `DPoP-Nonce` it carries,
    /// and on a 401 says whether to retry with the nonce (the API asked for one) or with a
    /// new token (any other 401; `token` is dropped from the cache, so the next request
    /// fetches a new one even when this one cannot be resent).
    pub fn answered<'a>(
        &self,
        token: &Token,
        url: &str,
        status: u16,
        www_authenticate: impl IntoIterator<Item = &'a str>,
        dpop_nonce: Option<&str>,
    ) -> Retry {
        let nonce_kept = self.remember_nonce(token, url, dpop_nonce);
        if status != 401 {
            return Retry::No;
        }
        if nonce_kept && asks_for_nonce(status, www_authenticate) {
            tracing::debug!("the API asked for a DPoP nonce; sending the request again with it");
            return Retry::WithNonce;
        }
        self.source.invalidate_token(token);
        Retry::WithNewToken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_challenges_are_found_among_others() {
        let yes = [
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
            r#"Bearer realm="api", DPoP algs="ES256 PS256", error="use_dpop_nonce""#,
            "dpop error=use_dpop_nonce",
        ];
        for v in yes {
            assert!(asks_for_nonce(401, [v]), "{v}");
        }
        let no = [
            r#"Bearer error="use_dpop_nonce""#,
            r#"DPoP error="invalid_token""#,
            r#"DPoP algs="ES256", Bearer error="use_dpop_nonce""#,
            r#"DPoP error_description="error=\"use_dpop_nonce\"""#,
            "",
        ];
        for v in no {
            assert!(!asks_for_nonce(401, [v]), "{v}");
        }
        assert!(!asks_for_nonce(400, [yes[0]]));
        assert!(asks_for_nonce(401, ["Bearer realm=\"x\"", yes[0]]));
    }

    #[test]
    fn nonces_are_kept_per_origin_and_checked() {
        let nonces = DpopNonces::new();
        assert!(nonces.remember("https://API.example:443/a?x", "n-1"));
        assert_eq!(nonces.get("https://api.example/b").as_deref(), Some("n-1"));
        assert_eq!(nonces.get("https://api.example:8443/b"), None);
        assert!(!nonces.remember("https://api.example/", "has space"));
        assert!(!nonces.remember("https://api.example/", "quote\""));
        assert!(!nonces.remember("https://api.example/", ""));
        assert!(!nonces.remember("https://api.example/", &"n".repeat(MAX_NONCE_LEN + 1)));
        assert!(!nonces.remember("not a url", "n"));
        assert_eq!(nonces.get("https://api.example/b").as_deref(), Some("n-1"));
        for i in 0..(MAX_ORIGINS + 5) {
            nonces.remember(&format!("https://h{i}.example/"), "n");
        }
        assert!(nonces.lock().len() <= MAX_ORIGINS);
    }

    #[test]
    fn bearer_or_dpop_with_a_proof_for_the_url_and_token() {
        use m2m_core::validate::{DpopRequest, DpopValidator};

        let now = UnixTime::from_secs(1_700_000_000);
        let key = DpopKey::ephemeral().unwrap();
        let auth = api_authorization(
            "the-token",
            Some(&key),
            "POST",
            "https://api.example/v1/x?page=2#f",
            Some("n-1"),
            now,
        )
        .unwrap();
        assert_eq!(auth.authorization(), "DPoP the-token");
        assert_eq!(auth.scheme(), "DPoP");
        let request = DpopRequest::new("POST", "https://api.example/v1/x")
            .access_token("the-token")
            .bound_to(key.thumbprint())
            .nonces(&["n-1"]);
        let verified = DpopValidator::default()
            .validate(auth.dpop().unwrap(), &request, now)
            .unwrap();
        assert_eq!(Some(verified.jti.as_str()), auth.proof_jti());
        let debug = format!("{auth:?}");
        assert!(!debug.contains("the-token") && !debug.contains(auth.dpop().unwrap()));

        let bearer =
            api_authorization("the-token", None, "GET", "https://api.example/", None, now).unwrap();
        assert_eq!(bearer.authorization(), "Bearer the-token");
        assert_eq!(bearer.dpop(), None);
        assert!(!format!("{bearer:?}").contains("the-token"));
    }
}
