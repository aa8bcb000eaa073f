//! Finding the token endpoint from an issuer (RFC 8414 authorization-server metadata).
//!
//! The metadata's `issuer` must equal the configured issuer exactly (RFC 8414 §3.3); otherwise a
//! server could make the client send assertions meant for one audience elsewhere. With discovery
//! the assertion's `aud` is the issuer (RFC 10070).

use m2m_discovery::MetadataSources;
use m2m_discovery::metadata::{parse_auth_server_metadata, parse_issuer};
use serde_json::{Map, Value};
use url::Url;

use crate::error::Error;
use crate::reqwest_transport::{ReqwestTransport, TransportConfig};
use crate::token_url::{TokenUrl, UrlPolicy};
use crate::transport::TokenTransport;

/// Authorization-server metadata, as far as the token client uses it: m2m-discovery's parsed
/// document, with the token endpoint it must have as a [`TokenUrl`].
#[derive(Clone, Debug)]
pub struct AuthServerMetadata {
    inner: m2m_discovery::AuthServerMetadata,
    token_endpoint: TokenUrl,
}

impl AuthServerMetadata {
    /// The issuer identifier (equal to the configured one); the assertion's `aud`.
    pub fn issuer(&self) -> &str {
        self.inner.issuer()
    }

    /// Where token requests go.
    pub fn token_endpoint(&self) -> &TokenUrl {
        &self.token_endpoint
    }

    /// `jwks_uri`, if published.
    pub fn jwks_uri(&self) -> Option<&str> {
        self.inner.jwks_uri()
    }

    /// `token_endpoint_auth_methods_supported`, if published.
    pub fn token_endpoint_auth_methods(&self) -> Option<&[String]> {
        self.inner.token_endpoint_auth_methods()
    }

    /// `token_endpoint_auth_signing_alg_values_supported`, if published.
    pub fn token_endpoint_signing_algs(&self) -> Option<&[String]> {
        self.inner.token_endpoint_signing_algs()
    }

    /// Whether the server says it accepts `private_key_jwt` (true when it does not say).
    pub fn supports_private_key_jwt(&self) -> bool {
        self.inner.supports_private_key_jwt()
    }

    /// All other metadata members.
    pub fn extra(&self) -> &Map<String, Value> {
        self.inner.extra()
    }
}

/// The metadata URLs to try for an issuer: the RFC 8414 §3.1 form (well-known path inserted
/// before the issuer's path), then, for issuers with a path, the appended form that many servers
/// (Keycloak, OIDC-style deployments) serve instead.
pub fn metadata_urls(issuer: &Url) -> Vec<Url> {
    m2m_discovery::metadata::metadata_urls(issuer, MetadataSources::OAuth)
}

/// Why discovery failed, as this crate's error. The metadata's own reason is kept without the
/// issuer, which [`Error::Discovery`] already names.
fn discovery_error(issuer: &str, e: m2m_discovery::Error) -> Error {
    let reason = match e {
        m2m_discovery::Error::InvalidMetadata { reason, .. } => reason,
        other => other.to_string(),
    };
    Error::Discovery {
        issuer: issuer.to_owned(),
        reason,
    }
}

/// Reads a metadata document and checks it against the configured issuer. Pure.
pub fn parse_metadata(
    issuer: &str,
    body: &[u8],
    policy: UrlPolicy,
) -> Result<AuthServerMetadata, Error> {
    let fail = |e| discovery_error(issuer, e);
    let inner = parse_auth_server_metadata(issuer, body, &policy).map_err(fail)?;
    let endpoint = inner.require_token_endpoint().map_err(fail)?.clone();
    let token_endpoint = TokenUrl::from_url(endpoint, policy).map_err(|e| Error::Discovery {
        issuer: issuer.to_owned(),
        reason: format!("token_endpoint: {e}"),
    })?;
    Ok(AuthServerMetadata {
        inner,
        token_endpoint,
    })
}

/// Fetches and checks the metadata of `issuer` with the default transport.
pub async fn discover(issuer: &str) -> Result<AuthServerMetadata, Error> {
    let transport = ReqwestTransport::new(&TransportConfig::default())?;
    discover_with(&transport, issuer, UrlPolicy::default()).await
}

/// Fetches and checks the metadata of `issuer` through `transport` (the client's transport, so
/// tests and embedders can substitute it; the URLs and the parser are m2m-discovery's).
pub async fn discover_with(
    transport: &dyn TokenTransport,
    issuer: &str,
    policy: UrlPolicy,
) -> Result<AuthServerMetadata, Error> {
    let fail = |reason: String| Error::Discovery {
        issuer: issuer.to_owned(),
        reason,
    };
    let parsed = parse_issuer(issuer, &policy).map_err(|e| discovery_error(issuer, e))?;
    let mut tried = Vec::new();
    for url in metadata_urls(&parsed) {
        tracing::debug!(%url, "fetching authorization-server metadata");
        let response = transport.get(&url).await?;
        match response.status {
            200 => {
                let metadata = parse_metadata(issuer, &response.body, policy)?;
                if !metadata.supports_private_key_jwt() {
                    tracing::warn!(
                        issuer,
                        "the server's metadata does not list private_key_jwt"
                    );
                }
                return Ok(metadata);
            }
            404 => tried.push(format!("{url} (404)")),
            status => return Err(fail(format!("GET {url} answered HTTP {status}"))),
        }
    }
    Err(fail(format!("no metadata found at {}", tried.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8414_urls() {
        let u = |s: &str| Url::parse(s).unwrap();
        let strs = |v: Vec<Url>| v.into_iter().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            strs(metadata_urls(&u("https://as.example.com"))),
            ["https://as.example.com/.well-known/oauth-authorization-server"]
        );
        assert_eq!(
            strs(metadata_urls(&u("https://kc.example.com/realms/x"))),
            [
                "https://kc.example.com/.well-known/oauth-authorization-server/realms/x",
                "https://kc.example.com/realms/x/.well-known/oauth-authorization-server",
            ]
        );
    }

    #[test]
    fn issuer_must_match_exactly() {
        let body = br#"{"issuer":"https://as.example.com/","token_endpoint":"https://as.example.com/token"}"#;
        let err = parse_metadata("https://as.example.com", body, UrlPolicy::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("not exactly the configured issuer"),
            "{err}"
        );
        let ok = parse_metadata("https://as.example.com/", body, UrlPolicy::default()).unwrap();
        assert_eq!(ok.token_endpoint().as_str(), "https://as.example.com/token");
        assert!(ok.supports_private_key_jwt());
    }

    #[test]
    fn insecure_token_endpoint_is_refused() {
        let body = br#"{"issuer":"https://as.example.com","token_endpoint":"http://as.example.com/token"}"#;
        let err = parse_metadata("https://as.example.com", body, UrlPolicy::default()).unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
    }
}
