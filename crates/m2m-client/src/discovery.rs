//! Finding the token endpoint from an issuer (RFC 8414 authorization-server metadata).
//!
//! The metadata's `issuer` must equal the configured issuer exactly (RFC 8414 §3.3); otherwise a
//! server could make the client send assertions meant for one audience elsewhere. With discovery
//! the assertion's `aud` is the issuer (RFC 10070).

use serde_json::{Map, Value};
use url::Url;

use crate::error::Error;
use crate::reqwest_transport::{ReqwestTransport, TransportConfig};
use crate::token_url::{TokenUrl, UrlPolicy, check_url};
use crate::transport::TokenTransport;

/// The RFC 8414 well-known suffix.
const WELL_KNOWN: &str = ".well-known/oauth-authorization-server";

/// Authorization-server metadata, as far as the token client uses it.
#[derive(Clone, Debug)]
pub struct AuthServerMetadata {
    issuer: String,
    token_endpoint: TokenUrl,
    jwks_uri: Option<String>,
    auth_methods: Option<Vec<String>>,
    signing_algs: Option<Vec<String>>,
    extra: Map<String, Value>,
}

impl AuthServerMetadata {
    /// The issuer identifier (equal to the configured one); the assertion's `aud`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where token requests go.
    pub fn token_endpoint(&self) -> &TokenUrl {
        &self.token_endpoint
    }

    /// `jwks_uri`, if published.
    pub fn jwks_uri(&self) -> Option<&str> {
        self.jwks_uri.as_deref()
    }

    /// `token_endpoint_auth_methods_supported`, if published.
    pub fn token_endpoint_auth_methods(&self) -> Option<&[String]> {
        self.auth_methods.as_deref()
    }

    /// `token_endpoint_auth_signing_alg_values_supported`, if published.
    pub fn token_endpoint_signing_algs(&self) -> Option<&[String]> {
        self.signing_algs.as_deref()
    }

    /// Whether the server says it accepts `private_key_jwt` (true when it does not say).
    pub fn supports_private_key_jwt(&self) -> bool {
        self.auth_methods
            .as_ref()
            .is_none_or(|m| m.iter().any(|m| m == "private_key_jwt"))
    }

    /// All other metadata members.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
}

/// The metadata URLs to try for an issuer: the RFC 8414 §3.1 form (well-known path inserted
/// before the issuer's path), then, for issuers with a path, the appended form that many servers
/// (Keycloak, OIDC-style deployments) serve instead.
pub fn metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut rfc = issuer.clone();
    rfc.set_query(None);
    rfc.set_path(&format!("/{WELL_KNOWN}{path}"));
    let mut urls = vec![rfc];
    if !path.is_empty() {
        let mut appended = issuer.clone();
        appended.set_query(None);
        appended.set_path(&format!("{path}/{WELL_KNOWN}"));
        urls.push(appended);
    }
    urls
}

/// Reads a metadata document and checks it against the configured issuer. Pure.
pub fn parse_metadata(
    issuer: &str,
    body: &[u8],
    policy: UrlPolicy,
) -> Result<AuthServerMetadata, Error> {
    let fail = |reason: String| Error::Discovery {
        issuer: issuer.to_owned(),
        reason,
    };
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else {
        return Err(fail(
            "the metadata document is not a JSON object".to_owned(),
        ));
    };
    let mut take_string = |name: &str| match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(fail(format!("metadata member {name} is not a string"))),
    };
    let published =
        take_string("issuer")?.ok_or_else(|| fail("the metadata has no issuer".to_owned()))?;
    if published != issuer {
        return Err(fail(format!(
            "the metadata names issuer {published:?}, which is not exactly the configured issuer \
             (RFC 8414 §3.3); configure the issuer exactly as the server publishes it"
        )));
    }
    let endpoint = take_string("token_endpoint")?
        .ok_or_else(|| fail("the metadata has no token_endpoint".to_owned()))?;
    let token_endpoint = TokenUrl::parse_with(&endpoint, policy)
        .map_err(|e| fail(format!("token_endpoint: {e}")))?;
    let jwks_uri = take_string("jwks_uri")?;
    let mut take_list = |name: &str| match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(fail(format!("metadata member {name} must list strings"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(fail(format!("metadata member {name} is not an array"))),
    };
    let auth_methods = take_list("token_endpoint_auth_methods_supported")?;
    let signing_algs = take_list("token_endpoint_auth_signing_alg_values_supported")?;
    Ok(AuthServerMetadata {
        issuer: published,
        token_endpoint,
        jwks_uri,
        auth_methods,
        signing_algs,
        extra: map,
    })
}

/// Fetches and checks the metadata of `issuer` with the default transport.
pub async fn discover(issuer: &str) -> Result<AuthServerMetadata, Error> {
    let transport = ReqwestTransport::new(&TransportConfig::default())?;
    discover_with(&transport, issuer, UrlPolicy::default()).await
}

/// Fetches and checks the metadata of `issuer` through `transport`.
pub async fn discover_with(
    transport: &dyn TokenTransport,
    issuer: &str,
    policy: UrlPolicy,
) -> Result<AuthServerMetadata, Error> {
    let fail = |reason: String| Error::Discovery {
        issuer: issuer.to_owned(),
        reason,
    };
    let parsed = Url::parse(issuer).map_err(|e| fail(format!("not a valid URL: {e}")))?;
    check_url(&parsed, policy).map_err(|e| fail(e.to_string()))?;
    if parsed.query().is_some() {
        return Err(fail(
            "an issuer identifier has no query component (RFC 8414 §2)".to_owned(),
        ));
    }
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
