//! The trusted issuers' keys: static sets as registered, a `jwks_uri` through the server's
//! `JwksFetcher` (its cache, kid-miss refetch, single flight, stale-if-error), or discovery first
//! (OIDC `/.well-known/openid-configuration` or RFC 8414 metadata, whose `issuer` must equal the
//! trusted one exactly) — all under `m2m_discovery`'s URL policy (https, plain http only to
//! loopback, no redirects, size caps). A request waits at most [`TRUST_KEYS_WAIT`] for all of it,
//! then is refused: a slow issuer must not hold token requests open.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use m2m_core::ids::KeySet;
use m2m_discovery::metadata::{
    MetadataSources, metadata_urls, parse_auth_server_metadata, parse_issuer,
};
use m2m_discovery::{HttpClient, UrlPolicy};
use url::Url;

use super::{Trust, TrustKeySource};
use crate::state::AppState;

/// Longest a token request waits for an issuer's keys (discovery and JWKS together).
pub const TRUST_KEYS_WAIT: Duration = Duration::from_secs(5);

/// Longest accepted metadata document.
const MAX_METADATA_BYTES: usize = 64 * 1024;

/// The discovered `jwks_uri` of each issuer, and the HTTP client discovery uses.
#[derive(Debug)]
pub(crate) struct TrustKeys {
    http: HttpClient,
    /// Issuer → its metadata's `jwks_uri`, once discovered. A std mutex, never held across an
    /// await. Kept across registry reloads: an issuer's metadata outlives them.
    jwks_uris: Mutex<HashMap<String, Url>>,
    /// One discovery at a time, so a burst of first requests makes one metadata request.
    discovery: tokio::sync::Mutex<()>,
}

impl TrustKeys {
    pub(crate) fn new(http: HttpClient) -> Self {
        TrustKeys {
            http,
            jwks_uris: Mutex::new(HashMap::new()),
            discovery: tokio::sync::Mutex::new(()),
        }
    }

    fn known(&self, issuer: &str) -> Option<Url> {
        self.jwks_uris
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(issuer)
            .cloned()
    }

    /// The issuer's `jwks_uri` by discovery (cached once found; a failure is not remembered).
    async fn discover(
        &self,
        issuer: &str,
        sources: TrustKeySource,
        jwks_policy: &UrlPolicy,
    ) -> Result<Url, String> {
        if let Some(u) = self.known(issuer) {
            return Ok(u);
        }
        let _one_at_a_time = self.discovery.lock().await;
        if let Some(u) = self.known(issuer) {
            return Ok(u);
        }
        let policy = UrlPolicy::new();
        let parsed = parse_issuer(issuer, &policy).map_err(|e| e.to_string())?;
        let urls: Vec<Url> = match sources {
            TrustKeySource::Rfc8414 => metadata_urls(&parsed, MetadataSources::OAuth),
            _ => metadata_urls(&parsed, MetadataSources::OAuthThenOpenId)
                .into_iter()
                .filter(|u| u.path().contains("openid-configuration"))
                .collect(),
        };
        let mut tried = Vec::new();
        for url in urls {
            let doc = self
                .http
                .get(&url, &policy, "application/json", MAX_METADATA_BYTES)
                .await
                .map_err(|e| e.to_string())?;
            match doc.status {
                200 => {
                    let meta = parse_auth_server_metadata(issuer, &doc.body, &policy)
                        .map_err(|e| e.to_string())?;
                    let uri = meta
                        .jwks_uri()
                        .ok_or_else(|| format!("the metadata at {url} has no jwks_uri"))?;
                    let uri = jwks_policy
                        .parse(uri)
                        .map_err(|e| format!("jwks_uri: {e}"))?;
                    self.jwks_uris
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(issuer.to_owned(), uri.clone());
                    return Ok(uri);
                }
                404 => tried.push(format!("{url} (404)")),
                status => return Err(format!("{url} answered {status}")),
            }
        }
        Err(format!("no metadata found (tried {})", tried.join(", ")))
    }
}

/// The keys of `trust`'s issuer, `kid` the token names (a fresh cached set lacking it is
/// refetched once, as the fetcher's policy allows). `Err` carries the reason for the log.
pub(crate) async fn issuer_keys(
    state: &AppState,
    trust: &Trust,
    kid: Option<&str>,
) -> Result<KeySet, String> {
    let fetch = async {
        let url = match &trust.keys {
            TrustKeySource::Static(keys) => return Ok(keys.clone()),
            TrustKeySource::JwksUri(url) => url.clone(),
            source => {
                let jwks_policy = state.fetcher.policy().url_policy();
                state
                    .trust_keys
                    .discover(&trust.issuer, source.clone(), &jwks_policy)
                    .await?
            }
        };
        state
            .fetcher
            .keys(&url, kid)
            .await
            .map_err(|e| format!("{url}: {e}"))
    };
    match tokio::time::timeout(TRUST_KEYS_WAIT, fetch).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} s", TRUST_KEYS_WAIT.as_secs())),
    }
}
